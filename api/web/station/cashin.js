// Cash-in online: the villager hands the agent cash; the agent's float pays her wallet
// (POST /v1/agents/{id}/cash-ins). Steps: the villager's id and the amount; a check of
// who she is (her name, as text); the cash-in under one operation id (a second tap or a
// retry is the same operation); the result and the float now.

import { newIdempotencyKey } from "/web/shared/api.js";
import { el, figures } from "/web/shared/dom.js";
import { t } from "/web/shared/i18n.js";
import { formatMoney, parseAmount } from "/web/shared/money.js";
import { floatOf } from "./home.js";

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ID_LENGTH_MAX = 36;
const AMOUNT_LENGTH_MAX = 20;

function refusal(box, text) {
  box.replaceChildren(el("p", { class: "error", role: "alert" }, text));
}

async function confirmAndPay(context, box, villager, minor) {
  const { api, identity, showProblem } = context;
  const amount = formatMoney(minor, villager.currency);
  const operation = newIdempotencyKey();
  const pay = el("button", { type: "button", id: "confirm" }, t("Confirm cash-in"));
  box.replaceChildren(el("p", { class: "ok", id: "confirm-text" },
    t("Cash in {amount} for {name}?", { amount, name: villager.name })), pay);
  pay.addEventListener("click", async () => {
    pay.disabled = true;
    try {
      const done = await api.post(`/v1/agents/${identity.principalId}/cash-ins`,
        { id: operation, villager_id: villager.id, amount_minor: Number(minor) },
        { idempotencyKey: operation });
      const float = await floatOf(api, identity);
      box.replaceChildren(
        el("p", { class: "ok", role: "status", id: "cash-in-done" },
          t("Paid {amount} into the wallet of {name}.", { amount, name: villager.name })),
        figures([
          [t("Fee"), formatMoney(done.fee_minor, done.currency), "cash-in-fee"],
          [t("Commission"), formatMoney(done.commission_minor, done.currency), "cash-in-commission"],
          [t("Float available now"), formatMoney(float.available_minor, float.currency), "float-after"],
        ]));
    } catch (error) {
      pay.disabled = false;
      showProblem(box, error);
    }
  });
}

export async function renderCashIn(context) {
  const { main, api, identity } = context;
  const float = await floatOf(api, identity);
  const villager = el("input", { id: "villager", name: "villager", autocomplete: "off",
    spellcheck: "false", maxlength: ID_LENGTH_MAX, required: true });
  const amount = el("input", { id: "amount", name: "amount", inputmode: "decimal",
    autocomplete: "off", maxlength: AMOUNT_LENGTH_MAX, required: true });
  const form = el("form", { id: "cash-in-form" },
    el("label", { for: "villager" }, t("Villager id")), villager,
    el("label", { for: "amount" }, t("Amount ({currency})", { currency: float.currency })), amount,
    el("button", { type: "submit", id: "check" }, t("Next")));
  const box = el("div", { id: "cash-in-outcome" });
  main.append(el("h2", {}, t("Cash in")), form, box,
    el("p", { class: "muted" }, t("Finding a villager by phone number is not offered by the API yet: use the id from her registration.")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = villager.value.trim();
    const minor = parseAmount(amount.value, float.currency);
    if (!ID.test(id)) return refusal(box, t("That is not a villager id."));
    if (minor === null) return refusal(box, t("Type an amount like 1,250 or 1250.50."));
    try {
      const found = await api.get(`/v1/villagers/${id}`);
      if (found.currency !== float.currency) {
        return refusal(box, t("This villager's wallet is in another currency."));
      }
      await confirmAndPay(context, box, found, minor);
    } catch (error) {
      if (error.status === 404) return refusal(box, t("No villager with that id at this station."));
      context.showProblem(box, error);
    }
  });
}
