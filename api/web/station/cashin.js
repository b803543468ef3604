// Cash-in: the villager hands the agent cash; the agent's float pays her wallet.
// Online (POST /v1/agents/{id}/cash-ins): the villager's id and the amount; a check of
// who she is (her name, as text); the cash-in under one operation id (a second tap or a
// retry is the same operation); the result and the float now.
// Offline (no network): the same form; the cash-in is captured as a signed record of the
// offline protocol and kept in the queue (queue.js), within the offline allowance shown,
// and sent when the network is back. The helpers both cash screens share are here.

import { newIdempotencyKey } from "/web/shared/api.js";
import { el, figures } from "/web/shared/dom.js";
import { t } from "/web/shared/i18n.js";
import { formatMoney, parseAmount } from "/web/shared/money.js";
import { floatOf } from "./home.js";
import { allowanceLeft, capture, queueState, refreshDevice } from "./queue.js";

export const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const PHONE = /^\+?[0-9]{7,15}$/; // E.164 digits, as the villagers flow takes them
export const ID_LENGTH_MAX = 36;
export const AMOUNT_LENGTH_MAX = 20;

/** Say why not on `box`; null (no villager, no step). */
export function refusal(box, text) {
  box.replaceChildren(el("p", { class: "error", role: "alert" }, text));
  return null;
}

/** The station's currency and, offline, the queue's state: online from the float (and
 * the device's allowance kept for later), offline from what was kept; null (and a line
 * on `main` saying why) offline on a phone that never kept its allowance. */
export async function stationOf({ main, api, identity }) {
  if (navigator.onLine) {
    const float = await floatOf(api, identity);
    if (!float.stale) {
      refreshDevice(api, identity).catch(() => null); // kept for offline; not needed now
      return { currency: float.currency, float, offline: false };
    }
  }
  const state = await queueState(identity.deviceId);
  if (!state.device) {
    main.append(el("p", { class: "error", role: "alert", id: "no-allowance" },
      t("No network, and this phone has not yet seen its offline allowance: open the app once with the network on.")));
    return null;
  }
  return { currency: state.device.currency, state, offline: true };
}

/** "Offline allowance left" for the queue's state, as a line with id `allowance-left`. */
export function allowanceNote(state) {
  const left = allowanceLeft(state) ?? 0;
  return el("p", { class: "warn", role: "status", id: "offline-note" },
    t("No network: this will be kept on this phone and sent when the network is back."),
    " ", el("span", { id: "allowance-left" },
      t("Offline allowance left: {amount}", { amount: formatMoney(left, state.device.currency) })));
}

/** The villager typed as her id or her phone number: her record from the API (offline:
 * the last answer this phone kept, by the service worker), null when the station has no
 * such villager, undefined with no network and nothing kept. */
export async function findVillager({ api, identity }, text) {
  try {
    if (ID.test(text)) return await api.get(`/v1/villagers/${text.toLowerCase()}`);
    const query = new URLSearchParams({ phone: text });
    const found = await api.get(`/v1/agents/${identity.principalId}/villagers?${query}`);
    return found.data[0] ?? null;
  } catch (error) {
    if (error.status === 404) return null;
    if (error instanceof TypeError) return undefined;
    throw error;
  }
}

/** The villager for a cash screen's step, or null once `box` says why not: her record,
 * or offline { id } alone (her name not kept on this phone) when her id was typed. */
export async function chooseVillager(context, box, text, currency) {
  const byId = ID.test(text);
  if (!byId && !PHONE.test(text)) return refusal(box, t("That is not a villager id."));
  const found = await findVillager(context, text);
  if (found === null) {
    return refusal(box, byId ? t("No villager with that id at this station.")
      : t("No villager of this station has that phone number."));
  }
  if (found === undefined) {
    if (byId && !navigator.onLine) return { id: text.toLowerCase(), name: null, currency };
    if (navigator.onLine) throw new TypeError("no network");
    return refusal(box, t("With no network, type her id: a phone number is found only online, or if this phone found her before."));
  }
  if (found.currency !== currency) {
    return refusal(box, t("This villager's wallet is in another currency."));
  }
  return found;
}

function capturedText(kind, amount, name) {
  if (kind === "cash_in") return t("Kept on this phone: cash-in of {amount} for {name}. It will be sent when the network is back.", { amount, name });
  return t("Kept on this phone: cash-out of {amount} to {name}. It will be sent when the network is back.", { amount, name });
}

/** Offline: confirm, then capture the record into the queue (one tap: a second tap
 * finds the button gone). `wanted`: { kind, villager (chooseVillager's), minor, currency,
 * consentCode }. */
export function confirmOffline(context, box, wanted) {
  const { identity } = context;
  const found = wanted.villager;
  const name = found.name ?? t("villager {id} (name not known on this phone)", { id: found.id });
  const amount = formatMoney(wanted.minor, wanted.currency);
  const question = wanted.kind === "cash_in"
    ? t("Keep a cash-in of {amount} for {name} on this phone?", { amount, name })
    : t("Keep a cash-out of {amount} to {name} on this phone? Hand over the cash only after this is kept.", { amount, name });
  const keep = el("button", { type: "button", id: "confirm" }, t("Keep it"));
  box.replaceChildren(el("p", { class: "ok", id: "confirm-text" }, question), keep);
  keep.addEventListener("click", async () => {
    keep.disabled = true;
    try {
      await capture(identity, { kind: wanted.kind, villagerId: found.id,
        villagerName: found.name, amountMinor: Number(wanted.minor),
        currency: wanted.currency, consentCode: wanted.consentCode ?? null });
      const note = allowanceNote(await queueState(identity.deviceId));
      box.replaceChildren(el("p", { class: "ok", role: "status", id: "queued" },
        capturedText(wanted.kind, amount, name)));
      const shown = document.getElementById("offline-note");
      if (shown) shown.replaceWith(note);
      else box.append(note);
    } catch (error) {
      if (error.code === "allowance_spent") {
        const state = await queueState(identity.deviceId);
        return refusal(box, t("That is more than the offline allowance left ({amount}). Nothing was kept.",
          { amount: formatMoney(allowanceLeft(state) ?? 0, wanted.currency) }));
      }
      keep.disabled = false;
      context.showProblem(box, error);
    }
  });
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

/** The villager and amount fields, labelled, with their length limits. */
export function villagerAndAmount(currency) {
  const villager = el("input", { id: "villager", name: "villager", autocomplete: "off",
    spellcheck: "false", maxlength: ID_LENGTH_MAX, required: true });
  const amount = el("input", { id: "amount", name: "amount", inputmode: "decimal",
    autocomplete: "off", maxlength: AMOUNT_LENGTH_MAX, required: true });
  const fields = [el("label", { for: "villager" }, t("Villager's phone or id")), villager,
    el("label", { for: "amount" }, t("Amount ({currency})", { currency })), amount];
  return { villager, amount, fields };
}

export async function renderCashIn(context) {
  const { main } = context;
  const station = await stationOf(context);
  if (!station) return;
  const { villager, amount, fields } = villagerAndAmount(station.currency);
  const form = el("form", { id: "cash-in-form" }, fields,
    el("button", { type: "submit", id: "check" }, t("Next")));
  const box = el("div", { id: "cash-in-outcome" });
  main.append(el("h2", {}, t("Cash in")));
  if (station.offline) main.append(allowanceNote(station.state));
  main.append(form, box,
    el("p", { class: "muted" }, t("Type her phone number with its country code (+254…) or the id from her registration.")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = villager.value.replace(/\s+/g, "");
    const minor = parseAmount(amount.value, station.currency);
    if (!ID.test(text) && !PHONE.test(text)) return refusal(box, t("That is not a villager id."));
    if (minor === null) return refusal(box, t("Type an amount like 1,250 or 1250.50."));
    try {
      const found = await chooseVillager(context, box, text, station.currency);
      if (!found) return;
      if (!navigator.onLine) {
        return confirmOffline(context, box, { kind: "cash_in", villager: found, minor,
          currency: station.currency, consentCode: null });
      }
      confirmAndPay(context, box, found, minor);
    } catch (error) {
      context.showProblem(box, error);
    }
  });
}
