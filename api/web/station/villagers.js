// Villagers: register a villager at this station (POST /v1/villagers: phone, name, her
// language; she starts at tier0, the route's rule) and find one of this station's own
// villagers by phone (GET /v1/agents/{id}/villagers?phone=). The activation code goes to
// her phone by SMS and never into the API's answer: the screen says so. A registration is
// one operation under one id: a second tap or a retry is the same villager.

import { newIdempotencyKey } from "/web/shared/api.js";
import { el, figures } from "/web/shared/dom.js";
import { t } from "/web/shared/i18n.js";

const PHONE_LENGTH_MAX = 32;
const NAME_LENGTH_MAX = 200;

function stateText(state) {
  if (state === "pending_activation") return t("Waiting for her activation code");
  if (state === "active") return t("Set: she is active");
  if (state === "locked") return t("Locked (too many wrong PINs)");
  return state;
}

/** A villager's card: name, phone, state, tier and the id used for cash-ins. */
export function villagerCard(villager, id) {
  return el("section", { class: "card", id },
    el("h3", { class: "name" }, villager.name),
    figures([
      [t("Phone number"), villager.phone, `${id}-phone`],
      [t("Her PIN"), stateText(villager.state), `${id}-state`],
      [t("KYC tier"), villager.kyc_tier, `${id}-tier`],
      [t("Villager id"), villager.id, `${id}-id`],
    ]));
}

function refusalText(error) {
  if (error.code === "phone_invalid" || error.code === "invalid_parameter") return t("That is not a phone number: start with + and the country code.");
  if (error.code === "name_invalid") return t("A name is printable text without < or >.");
  if (error.code === "phone_taken") return t("A villager with that phone number is already registered.");
  return null;
}

function inputs() {
  const phone = el("input", { id: "new-phone", name: "phone", type: "tel", autocomplete: "off",
    inputmode: "tel", maxlength: PHONE_LENGTH_MAX, required: true, placeholder: "+254 7…" });
  const name = el("input", { id: "new-name", name: "name", autocomplete: "off",
    maxlength: NAME_LENGTH_MAX, required: true });
  const speaks = el("select", { id: "new-language", name: "language" },
    el("option", { value: "sw" }, "Kiswahili"), el("option", { value: "en" }, "English"));
  return { phone, name, speaks };
}

function registerForm(context, currency) {
  const { api, showProblem } = context;
  const { phone, name, speaks } = inputs();
  const button = el("button", { type: "submit", id: "register" }, t("Register her"));
  const form = el("form", { id: "register-form" },
    el("label", { for: "new-phone" }, t("Phone number")), phone,
    el("label", { for: "new-name" }, t("Her name")), name,
    el("label", { for: "new-language" }, t("Her language")), speaks, button);
  const box = el("div", { id: "register-outcome" });
  let operation = null;
  let asked = "";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wanted = JSON.stringify([phone.value.trim(), name.value.trim(), speaks.value]);
    if (wanted !== asked) [operation, asked] = [newIdempotencyKey(), wanted];
    button.disabled = true;
    box.replaceChildren();
    try {
      const made = await api.post("/v1/villagers", { id: operation, phone: phone.value.trim(),
        name: name.value.trim(), currency, language: speaks.value }, { idempotencyKey: operation });
      box.append(el("p", { class: "ok", role: "status", id: "registered" },
        t("Registered {name}. Her activation code went to her phone by SMS: she sets her PIN with it.",
          { name: made.name })), villagerCard(made, "new-villager"));
      form.reset();
    } catch (error) {
      const text = refusalText(error);
      if (text) box.append(el("p", { class: "error", role: "alert" }, text));
      else showProblem(box, error);
    } finally {
      button.disabled = false;
    }
  });
  return [form, box];
}

function findForm(context) {
  const { api, identity, showProblem } = context;
  const phone = el("input", { id: "find-phone", name: "phone", type: "tel", autocomplete: "off",
    inputmode: "tel", maxlength: PHONE_LENGTH_MAX, required: true, placeholder: "+254 7…" });
  const form = el("form", { id: "find-form" },
    el("label", { for: "find-phone" }, t("Phone number")), phone,
    el("button", { type: "submit", id: "find" }, t("Find her")));
  const box = el("div", { id: "find-outcome" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.replaceChildren();
    const query = new URLSearchParams({ phone: phone.value.trim() });
    try {
      const found = await api.get(`/v1/agents/${identity.principalId}/villagers?${query}`);
      if (found.data.length === 0) {
        box.append(el("p", { class: "warn", role: "status", id: "not-found" },
          t("No villager of this station has that phone number.")));
      } else {
        box.append(villagerCard(found.data[0], "found-villager"));
      }
    } catch (error) {
      const text = refusalText(error);
      if (text) box.append(el("p", { class: "error", role: "alert" }, text));
      else showProblem(box, error);
    }
  });
  return [form, box];
}

export async function renderVillagers(context) {
  const { main, api, identity } = context;
  const party = await api.get(`/v1/parties/${identity.principalId}`);
  main.append(el("h2", {}, t("Villagers")),
    el("h3", {}, t("Find a villager")), ...findForm(context),
    el("h3", {}, t("Register a villager")),
    el("p", { class: "muted" }, t("She starts at the lowest KYC tier (tier0). Her wallet is in {currency}.",
      { currency: party.currency })),
    ...registerForm(context, party.currency));
}
