// Float: the agent's float now (GET /v1/agents/{id}/float), a transfer of float to another
// agent (POST /v1/agents/{id}/float-transfers: the other agent's id and the amount; a
// check, then one operation under one id, so a second tap or a retry moves it once), and
// how to top up. A top-up is not this phone's to make: the agent deposits cash with its
// bank or super-agent and asks for the float (POST .../float-topup-requests: a proposal,
// nothing moves); an operator approves it once the deposit is confirmed against the
// provider's statement (so that no agent can mint its own float).

import { newIdempotencyKey } from "/web/shared/api.js";
import { el, figures } from "/web/shared/dom.js";
import { t } from "/web/shared/i18n.js";
import { formatMoney, parseAmount } from "/web/shared/money.js";
import { floatOf } from "./home.js";

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ID_LENGTH_MAX = 36;
const AMOUNT_LENGTH_MAX = 20;
const PROVIDER = /^[A-Z0-9_]{1,32}$/;
const PROVIDER_LENGTH_MAX = 32;

function refusal(box, text) {
  box.replaceChildren(el("p", { class: "error", role: "alert" }, text));
}

function refusalText(error) {
  if (error.code === "float_short") return t("Your float is too low for that.");
  if (error.code === "agent_not_found") return t("No agent with that id.");
  if (error.code === "agents_must_differ") return t("That is this station's own id.");
  if (error.code === "currency_mismatch") return t("That agent's float is in another currency.");
  if (error.code === "guarantee_cap_exceeded") return t("That agent's float cannot hold that much more.");
  return null;
}

function floatFigures(float) {
  const money = (minor) => formatMoney(minor, float.currency);
  return [figures([[t("Float available"), money(float.available_minor), "float-available"]],
    "figures big"), figures([
    [t("Float balance"), money(float.balance_minor), "float-balance"],
    [t("Float held"), money(float.held_minor), "float-held"],
  ])];
}

function confirmTransfer(context, box, to, minor, currency) {
  const { api, identity, showProblem } = context;
  const amount = formatMoney(minor, currency);
  const operation = newIdempotencyKey();
  const send = el("button", { type: "button", id: "confirm-transfer" }, t("Send float"));
  box.replaceChildren(el("p", { class: "ok", id: "transfer-confirm-text" },
    t("Send {amount} of float to agent {agent}?", { amount, agent: to })), send);
  send.addEventListener("click", async () => {
    send.disabled = true;
    try {
      await api.post(`/v1/agents/${identity.principalId}/float-transfers`,
        { id: operation, to_agent_id: to, amount_minor: Number(minor) }, { idempotencyKey: operation });
      const float = await floatOf(api, identity);
      box.replaceChildren(el("p", { class: "ok", role: "status", id: "transfer-done" },
        t("Sent {amount} of float to agent {agent}.", { amount, agent: to })),
      figures([[t("Float available now"),
        formatMoney(float.available_minor, float.currency), "float-after"]]));
    } catch (error) {
      send.disabled = false;
      const text = refusalText(error);
      if (text) refusal(box, text);
      else showProblem(box, error);
    }
  });
}

function transferForm(context, float) {
  const to = el("input", { id: "to-agent", name: "to_agent", autocomplete: "off",
    spellcheck: "false", maxlength: ID_LENGTH_MAX, required: true });
  const amount = el("input", { id: "transfer-amount", name: "amount", inputmode: "decimal",
    autocomplete: "off", maxlength: AMOUNT_LENGTH_MAX, required: true });
  const form = el("form", { id: "transfer-form" },
    el("label", { for: "to-agent" }, t("The other agent's id")), to,
    el("label", { for: "transfer-amount" }, t("Amount ({currency})", { currency: float.currency })),
    amount, el("button", { type: "submit", id: "check-transfer" }, t("Next")));
  const box = el("div", { id: "transfer-outcome" });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = to.value.trim();
    const minor = parseAmount(amount.value, float.currency);
    if (!ID.test(id)) return refusal(box, t("That is not an agent id."));
    if (id.toLowerCase() === context.identity.principalId.toLowerCase()) {
      return refusal(box, t("That is this station's own id."));
    }
    if (minor === null) return refusal(box, t("Type an amount like 1,250 or 1250.50."));
    if (minor > BigInt(float.available_minor)) return refusal(box, t("Your float is too low for that."));
    confirmTransfer(context, box, id, minor, float.currency);
  });
  return [form, box];
}

function topUpForm(context, float) {
  const { api, identity, showProblem } = context;
  const amount = el("input", { id: "topup-amount", name: "amount", inputmode: "decimal",
    autocomplete: "off", maxlength: AMOUNT_LENGTH_MAX, required: true });
  const provider = el("input", { id: "topup-provider", name: "provider", autocomplete: "off",
    spellcheck: "false", maxlength: PROVIDER_LENGTH_MAX, required: true });
  const ask = el("button", { type: "submit", id: "ask-topup" }, t("Ask"));
  const form = el("form", { id: "topup-form" },
    el("label", { for: "topup-amount" }, t("Amount ({currency})", { currency: float.currency })),
    amount, el("label", { for: "topup-provider" }, t("Provider (your bank or super-agent)")),
    provider, ask);
  const box = el("div", { id: "topup-outcome" });
  const operation = newIdempotencyKey();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const minor = parseAmount(amount.value, float.currency);
    const code = provider.value.trim().toUpperCase();
    if (minor === null) return refusal(box, t("Type an amount like 1,250 or 1250.50."));
    if (!PROVIDER.test(code)) return refusal(box, t("Type the provider's code, like KCB or MPESA."));
    ask.disabled = true;
    try {
      await api.post(`/v1/agents/${identity.principalId}/float-topup-requests`,
        { id: operation, amount_minor: Number(minor), provider: code }, { idempotencyKey: operation });
      box.replaceChildren(el("p", { class: "ok", role: "status", id: "topup-asked" },
        t("Asked for {amount} from {provider}. The back office approves it once your deposit is confirmed.",
          { amount: formatMoney(minor, float.currency), provider: code })));
    } catch (error) {
      ask.disabled = false;
      showProblem(box, error);
    }
  });
  return [form, box];
}

export async function renderFloat(context) {
  const { main, api, identity } = context;
  const float = await floatOf(api, identity);
  main.append(el("h2", {}, t("Float")), ...floatFigures(float));
  if (float.stale) {
    main.append(el("p", { class: "warn", role: "status", id: "stale" },
      t("No network: these are the last figures this phone saw.")));
  }
  main.append(el("h3", {}, t("Top up")),
    el("p", { id: "top-up-how" }, t("To top up, deposit cash with your bank or super-agent and quote your agent id. The back office confirms the deposit against the provider's statement; then your float grows. This phone cannot add float by itself.")),
    figures([[t("Your agent id"), identity.principalId, "my-agent-id"]]),
    el("h3", {}, t("Ask for a top-up")), ...topUpForm(context, float),
    el("h3", {}, t("Send float to another agent")), ...transferForm(context, float));
}
