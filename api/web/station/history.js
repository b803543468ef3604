// History: the sync queue (every record captured offline, in capture order, with its
// state: kept on this phone, sent, applied (a hand-over: the order delivered), or an
// exception with the reason in words),
// a button that syncs now, the offline allowance (and, online, a form that sets it:
// POST /v1/devices/{id}/allowance), and the agent's recent cash-ins and cash-outs as the
// API lists them (GET /v1/agents/{id}/cash-ins, /cash-outs; oldest first, so the last
// pages are read, at most HISTORY_PAGES_MAX of them).

import { el, figures, timeEl } from "/web/shared/dom.js";
import { t } from "/web/shared/i18n.js";
import { formatMoney, parseAmount } from "/web/shared/money.js";
import { PENDING, QUEUE_EVENT, allowanceLeft, queueState, refreshDevice, syncNow } from "./queue.js";
import { reasonText } from "./cashout.js";

export const HISTORY_PAGES_MAX = 5;
export const HISTORY_SHOWN_MAX = 20;
const PAGE = 100;
const AMOUNT_LENGTH_MAX = 20;

function stateText(record) {
  if (record.state === "queued") return t("Kept on this phone");
  if (record.state === "sent") return t("Sent, waiting for the answer");
  if (record.state === "applied" && record.kind === "handover") return t("Handed over: the order is delivered");
  if (record.state === "applied") return t("Applied");
  return t("Exception: {reason}", { reason: reasonText(record.reason) });
}

function doneText(c) {
  const words = { requested: t("Waiting for the hand-over"), completed: t("Completed"),
    cancelled: t("Cancelled"), expired: t("Expired") };
  const said = c.kind === "cash_in" ? t("Completed") : words[c.state] ?? String(c.state);
  const offline = t("Captured offline");
  return c.device_id ? [said, offline].join(" · ") : said;
}

function kindText(kind) {
  if (kind === "handover") return t("Hand-over");
  return kind === "cash_in" ? t("Cash in") : t("Cash out");
}

function recordItem(record) {
  const who = record.kind === "handover" ? t("Order {id}", { id: record.orderId.slice(0, 8) })
    : record.villagerName ?? record.villagerId;
  return el("li", { class: `record ${record.state}`, "data-state": record.state,
    "data-record": record.recordId, "data-seq": record.seq, "data-kind": record.kind,
    "data-order": record.orderId ?? false },
  el("span", { class: "what" }, `${kindText(record.kind)} · ${formatMoney(record.amountMinor, record.currency)}`),
  el("span", { class: "who" }, who), timeEl(record.capturedAt),
  el("span", { class: "state" }, stateText(record)));
}

function lastSyncText(sync) {
  if (!sync) return t("Not synced yet from this phone.");
  if (sync.ok) return t("Last sync: {applied} applied, {exceptions} exceptions.", sync);
  if (sync.code === "network") return t("The last sync found no network; it runs again when the network is back.");
  if (sync.status === 401) return t("This phone is no longer allowed (its key was revoked or is unknown). Ask the back office for a new enrollment code.");
  if (sync.code === "device_revoked") return t("This phone's offline device was revoked: its records stay here and are not sent. Ask the back office.");
  return t("The last sync was refused: {reason}", { reason: sync.code });
}

function queueSection(state) {
  const currency = state.device ? state.device.currency : null;
  const pending = state.records.filter((r) => PENDING.has(r.state)).length;
  const rows = [[t("Waiting to be sent"), String(pending), "queue-pending"]];
  if (currency) {
    rows.unshift([t("Offline allowance left"), formatMoney(allowanceLeft(state), currency), "allowance-left"]);
  }
  const list = el("ol", { id: "queue", class: "queue" }, state.records.map(recordItem));
  return [figures(rows), el("p", { class: "muted", id: "last-sync" }, lastSyncText(state.sync)),
    state.records.length ? list : el("p", { class: "muted", id: "queue-empty" }, t("Nothing captured offline."))];
}

async function syncButton(context, box) {
  const { identity, api, showProblem } = context;
  const button = el("button", { type: "button", id: "sync-now" }, t("Sync now"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    box.replaceChildren();
    try {
      const done = await syncNow(identity, api);
      box.append(el("p", { class: "ok", role: "status", id: "sync-outcome" }, done.busy
        ? t("Another window of this app is syncing now.")
        : t("Sent {sent}: {applied} applied, {exceptions} exceptions.", done)));
    } catch (error) {
      if (error.code === "device_revoked") {
        box.append(el("p", { class: "error", role: "alert", id: "sync-outcome" }, lastSyncText({ code: error.code })));
      } else {
        showProblem(box, error);
      }
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function allowanceForm(context, currency, after) {
  const { api, identity, showProblem } = context;
  const input = el("input", { id: "allowance", name: "allowance", inputmode: "decimal",
    autocomplete: "off", maxlength: AMOUNT_LENGTH_MAX, required: true });
  const box = el("div", { id: "allowance-outcome" });
  const form = el("form", { id: "allowance-form" },
    el("label", { for: "allowance" }, t("Offline allowance ({currency})", { currency })), input,
    el("button", { type: "submit", id: "set-allowance" }, t("Set the offline allowance")), box);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const minor = parseAmount(input.value, currency);
    if (minor === null) {
      return box.replaceChildren(el("p", { class: "error", role: "alert" }, t("Type an amount like 1,250 or 1250.50.")));
    }
    try {
      await api.post(`/v1/devices/${identity.deviceId}/allowance`, { allowance_minor: Number(minor) });
      await refreshDevice(api, identity);
      await after();
    } catch (error) {
      box.replaceChildren();
      if (error.code === "float_short") {
        return box.append(el("p", { class: "error", role: "alert" }, t("The float cannot hold that much.")));
      }
      showProblem(box, error);
    }
  });
  return form;
}

async function lastPages(api, path) {
  let page = await api.get(`${path}?limit=${PAGE}`);
  let rows = page.data;
  for (let n = 1; n < HISTORY_PAGES_MAX && page.has_more; n += 1) {
    page = await api.get(`${path}?limit=${PAGE}&starting_after=${rows[rows.length - 1].id}`);
    rows = rows.concat(page.data);
  }
  return rows;
}

async function recentSection(context) {
  const { api, identity } = context;
  const base = `/v1/agents/${identity.principalId}`;
  const [ins, outs] = await Promise.all([lastPages(api, `${base}/cash-ins`), lastPages(api, `${base}/cash-outs`)]);
  const rows = ins.map((c) => ({ ...c, kind: "cash_in" })).concat(outs.map((c) => ({ ...c, kind: "cash_out" })))
    .sort((a, b) => (a.created_at < b.created_at ? 1 : -1)).slice(0, HISTORY_SHOWN_MAX);
  if (rows.length === 0) return el("p", { class: "muted", id: "recent-empty" }, t("No cash-ins or cash-outs yet."));
  return el("ol", { id: "recent", class: "queue" }, rows.map((c) => el("li", { "data-id": c.id, "data-kind": c.kind },
    el("span", { class: "what" }, `${kindText(c.kind)} · ${formatMoney(c.amount_minor, c.currency)}`),
    el("span", { class: "who" }, c.villager_id), timeEl(c.created_at),
    el("span", { class: "state" }, doneText(c)))));
}

export async function renderHistory(context) {
  const { main, identity, api } = context;
  if (navigator.onLine) await refreshDevice(api, identity).catch(() => null);
  const queueBox = el("section", { id: "queue-box" });
  const outcome = el("div", { id: "sync-box" });
  const draw = async () => queueBox.replaceChildren(...queueSection(await queueState(identity.deviceId)));
  await draw();
  const redraw = () => (queueBox.isConnected ? draw() : window.removeEventListener(QUEUE_EVENT, redraw));
  window.addEventListener(QUEUE_EVENT, redraw);
  main.append(el("h2", {}, t("History")), el("h3", {}, t("Sync queue")), queueBox,
    await syncButton(context, outcome), outcome);
  const state = await queueState(identity.deviceId);
  if (navigator.onLine && state.device) main.append(allowanceForm(context, state.device.currency, draw));
  main.append(el("h3", {}, t("Recent cash-ins and cash-outs")));
  try {
    main.append(await recentSection(context));
  } catch (error) {
    context.showProblem(main, error);
  }
}
