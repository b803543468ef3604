// Cash-out: the villager takes cash from the agent against her wallet, with the
// withdrawal code she made for this agent and the exact amount (on her phone, USSD).
// Online: the code is checked and her wallet and the agent's cash are held
// (POST /v1/agents/{id}/cash-outs, under one operation id), the agent hands the cash
// over and says so (POST /v1/cash-outs/{id}/confirm), or cancels.
// Offline: the cash-out is captured with her offline withdrawal code as a signed record
// of the offline protocol (queue.js), within the offline allowance, and checked when it
// syncs; a wrong or spent code then becomes an exception charged to the agent.

import { newIdempotencyKey } from "/web/shared/api.js";
import { el, figures } from "/web/shared/dom.js";
import { t } from "/web/shared/i18n.js";
import { formatMoney, parseAmount } from "/web/shared/money.js";
import { CODE_DIGITS } from "./queue.js";
import { ID, PHONE, allowanceNote, chooseVillager, confirmOffline, refusal, stationOf,
  villagerAndAmount } from "./cashin.js";

const CODE = new RegExp(`^\\d{${CODE_DIGITS}}$`);

/** A refusal's or an exception's reason in words (the server's code otherwise). */
export function reasonText(code) {
  const words = {
    consent_invalid: t("The withdrawal code was not accepted (wrong, already used or voided)."),
    consent_expired: t("The withdrawal code had expired."),
    consent_required: t("No withdrawal code was given."),
    consent_rate_limited: t("Too many wrong codes from this station: the code was not checked."),
    allowance_spent: t("The offline allowance was used up."),
    float_short: t("The float was too low."),
    wallet_short: t("The villager's wallet did not have enough."),
    limit_exceeded_daily: t("The villager's daily limit was reached."),
    limit_exceeded_per_transaction: t("The amount is above the villager's limit for one payment."),
    limit_exceeded_balance: t("The villager's wallet would pass its largest balance."),
    villager_not_found: t("No villager with that id at this station."),
    currency_mismatch: t("This villager's wallet is in another currency."),
    record_agent_mismatch: t("The record names another station."),
    sim_swap_hold: t("The villager's phone number changed lately: large withdrawals wait."),
    villager_not_active: t("The villager has not activated her PIN yet."),
    pickup_code_invalid: t("The pickup code was wrong: the goods are not recorded as handed over."),
    pickup_code_void: t("Her pickup code is void (three wrong codes, or the shop sent a new one): the shop must send her a new one."),
    order_not_found: t("No order with that id for this station."),
    order_not_deliverable: t("The order was no longer waiting to be handed over."),
    record_order_mismatch: t("The order is not the one this phone saw."),
  };
  return Object.hasOwn(words, code) ? words[code] : t("Not applied: {reason}", { reason: code });
}

function handedOver(box, villager, cashOut) {
  box.replaceChildren(
    el("p", { class: "ok", role: "status", id: "cash-out-done" },
      t("Handed {amount} to {name}.", { amount: formatMoney(cashOut.amount_minor, cashOut.currency),
        name: villager.name })),
    figures([
      [t("Fee"), formatMoney(cashOut.fee_minor, cashOut.currency), "cash-out-fee"],
      [t("Taken from her wallet"), formatMoney(cashOut.total_minor, cashOut.currency), "cash-out-total"],
    ]));
}

function handOver(context, box, villager, held) {
  const { api, showProblem } = context;
  const amount = formatMoney(held.amount_minor, held.currency);
  const handed = el("button", { type: "button", id: "handed" }, t("Cash handed over"));
  const cancel = el("button", { type: "button", id: "cancel", class: "secondary" }, t("Cancel"));
  box.replaceChildren(
    el("p", { class: "ok", id: "hand-over-text" },
      t("The code is right. Hand {amount} to {name} now, then tap Cash handed over.", { amount, name: villager.name })),
    figures([[t("Fee"), formatMoney(held.fee_minor, held.currency), "cash-out-fee"]]), handed, cancel);
  const step = async (button, path, after) => {
    handed.disabled = cancel.disabled = true;
    try {
      after(await api.post(path, {}, { idempotencyKey: `${held.id}:${button.id}` }));
    } catch (error) {
      handed.disabled = cancel.disabled = false;
      showProblem(box, error);
    }
  };
  handed.addEventListener("click", () => step(handed, `/v1/cash-outs/${held.id}/confirm`,
    (done) => handedOver(box, villager, done)));
  cancel.addEventListener("click", () => step(cancel, `/v1/cash-outs/${held.id}/cancel`,
    () => box.replaceChildren(el("p", { class: "muted", role: "status", id: "cash-out-cancelled" },
      t("Cancelled: nothing was taken from her wallet.")))));
}

function checkCode(context, box, villager, minor, code) {
  const { api, identity } = context;
  const operation = newIdempotencyKey();
  const amount = formatMoney(minor, villager.currency);
  const check = el("button", { type: "button", id: "confirm" }, t("Check the code"));
  box.replaceChildren(el("p", { class: "ok", id: "confirm-text" },
    t("Cash out {amount} to {name}?", { amount, name: villager.name })), check);
  check.addEventListener("click", async () => {
    check.disabled = true;
    try {
      const held = await api.post(`/v1/agents/${identity.principalId}/cash-outs`,
        { id: operation, villager_id: villager.id, amount_minor: Number(minor), consent_code: code },
        { idempotencyKey: operation });
      handOver(context, box, villager, held);
    } catch (error) {
      if (error.status === 422 || error.status === 429) return refusal(box, reasonText(error.code));
      check.disabled = false;
      context.showProblem(box, error);
    }
  });
}

export async function renderCashOut(context) {
  const { main } = context;
  const station = await stationOf(context);
  if (!station) return;
  const { villager, amount, fields } = villagerAndAmount(station.currency);
  const code = el("input", { id: "consent-code", name: "consent-code", inputmode: "numeric",
    autocomplete: "off", maxlength: CODE_DIGITS, required: true });
  const form = el("form", { id: "cash-out-form" }, fields,
    el("label", { for: "consent-code" }, t("The villager's withdrawal code")), code,
    el("button", { type: "submit", id: "check" }, t("Next")));
  const box = el("div", { id: "cash-out-outcome" });
  main.append(el("h2", {}, t("Cash out")));
  if (station.offline) main.append(allowanceNote(station.state));
  main.append(form, box, el("p", { class: "muted" },
    t("The villager makes the code on her phone for this station and this exact amount; with no network she makes an offline withdrawal code.")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = villager.value.replace(/\s+/g, "");
    const minor = parseAmount(amount.value, station.currency);
    const digits = code.value.trim();
    if (!ID.test(text) && !PHONE.test(text)) return refusal(box, t("That is not a villager id."));
    if (minor === null) return refusal(box, t("Type an amount like 1,250 or 1250.50."));
    if (!CODE.test(digits)) return refusal(box, t("The code is {digits} digits.", { digits: CODE_DIGITS }));
    try {
      const found = await chooseVillager(context, box, text, station.currency);
      if (!found) return;
      if (!navigator.onLine) {
        return confirmOffline(context, box, { kind: "cash_out", villager: found, minor,
          currency: station.currency, consentCode: digits });
      }
      checkCode(context, box, found, minor, digits);
    } catch (error) {
      context.showProblem(box, error);
    }
  });
}
