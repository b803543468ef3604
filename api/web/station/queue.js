// The offline capture queue: cash-ins, cash-outs and hand-overs of an order's goods
// captured with no network are signed records of the offline protocol
// (ledger/flows/offline: version 2 for cash, version 3 for a hand-over with the pickup
// code the villager typed; the canonical bytes signed with the device key, which is the
// key enrolled on this phone), kept in IndexedDB in capture order (the device's `seq`),
// so they survive a reload and a closed tab.
//
// Each record's state: queued (captured here), sent (a sync carrying it left; the answer
// was not seen yet), applied, exception (with the server's reason). A sync sends the
// pending records (queued and sent) in capture order, in batches, one sync at a time
// across every tab of the app (a Web Lock); the server applies each record exactly once
// and answers a re-sent one with its stored outcome, so a resend after a lost answer is
// harmless. The sync runs by itself when the network comes back (`online`), at app start
// when online, and on the history screen's button. Each request is signed (api.js) at
// the moment it is sent.
//
// The offline allowance: what the server last said the device may still spend offline
// (GET /v1/devices/{id}) less every record captured after the last one the server had
// then (its `last_seq`). A capture that does not fit is refused here, before any cash
// changes hands. Cash-outs count too: one whose code turns out wrong is charged to the
// agent against the allowance (ledger/flows/offline), so it is a risk until it applies.
// A hand-over moves no float: it is not counted against the allowance.

import { base64, loadIdentity } from "/web/shared/keys.js";
import { createApi } from "/web/shared/api.js";

const DB_NAME = "vledger-queue";
const DB_VERSION = 1;
const RECORDS = "records"; // key [deviceId, seq]: capture order
const META = "meta"; // "device:<id>" the last device answer; "sync:<id>" the last sync
const SYNC_LOCK = "vledger-station-sync";
const CAPTURE_LOCK = "vledger-station-capture";
const encoder = new TextEncoder();

export const RECORD_VERSION = 2;
export const HANDOVER_VERSION = 3;
const CASH_KINDS = new Set(["cash_in", "cash_out"]);
export const SYNC_BATCH_MAX = 100; // the server takes at most 500 a sync
export const SYNC_ROUNDS_MAX = 50; // batches in one sync; the rest waits for the next
export const SETTLED_KEPT_MAX = 200; // applied and exception records kept for history
export const CODE_DIGITS = 6; // a villager's withdrawal code (ledger/flows/consent)
export const QUEUE_EVENT = "station-queue"; // on window, after the queue changed
export const PENDING = new Set(["queued", "sent"]);

/** A refusal of the queue with a stable `code` (allowance_spent, device_unknown ...). */
export class QueueError extends Error {
  constructor(code, detail) {
    super(detail);
    this.name = "QueueError";
    this.code = code;
    this.detail = detail;
  }
}

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      request.result.createObjectStore(RECORDS, { keyPath: ["deviceId", "seq"] });
      request.result.createObjectStore(META);
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new QueueError("storage_unavailable", String(request.error)));
  });
}

/** Run `act(tx)` in one transaction; resolves, once it committed, to what `act` returned
 * (called first if it is a function: requests' results are read after the commit). */
async function transact(mode, act) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction([RECORDS, META], mode);
      const result = act(tx);
      tx.oncomplete = () => resolve(typeof result === "function" ? result() : result);
      const fail = () => reject(new QueueError(tx.error && tx.error.name === "ConstraintError"
        ? "seq_taken" : "storage_unavailable", String(tx.error)));
      tx.onabort = fail;
    });
  } finally {
    db.close();
  }
}

function rangeOf(deviceId) {
  return IDBKeyRange.bound([deviceId, 0], [deviceId, Number.MAX_SAFE_INTEGER]);
}

function readAll(tx, deviceId) {
  const records = tx.objectStore(RECORDS).getAll(rangeOf(deviceId));
  const device = tx.objectStore(META).get(`device:${deviceId}`);
  const sync = tx.objectStore(META).get(`sync:${deviceId}`);
  const floor = tx.objectStore(META).get(`floor:${deviceId}`);
  return () => ({ records: records.result, device: device.result ?? null,
    sync: sync.result ?? null, floor: floor.result ?? 0 });
}

/** This device's records in capture order, its last device answer and last sync. */
export async function queueState(deviceId) {
  return transact("readonly", (tx) => readAll(tx, deviceId));
}

/** How many captured records of this phone wait to be sent or applied. */
export async function pendingCount() {
  const identity = await loadIdentity();
  if (!identity || !identity.deviceId) return 0;
  const { records } = await queueState(identity.deviceId);
  return records.filter((r) => PENDING.has(r.state)).length;
}

/** The allowance the app shows: the server's last word less every record captured since. */
export function allowanceLeft({ records, device }) {
  if (!device) return null;
  const since = records.filter((r) => r.seq > device.lastSeq && CASH_KINDS.has(r.kind));
  return since.reduce((left, r) => left - r.amountMinor, device.allowanceMinor);
}

function notify() {
  window.dispatchEvent(new CustomEvent(QUEUE_EVENT));
}

/** Ask the server for the device (allowance, last seq) and the agent's currency, and keep
 * the answer for when there is no network. */
export async function refreshDevice(api, identity) {
  const [device, float] = await Promise.all([
    api.get(`/v1/devices/${identity.deviceId}`),
    api.get(`/v1/agents/${identity.principalId}/float`)]);
  const kept = { allowanceMinor: device.allowance_minor, lastSeq: device.last_seq,
    state: device.state, currency: float.currency, seenAt: new Date().toISOString() };
  await transact("readwrite", (tx) => {
    tx.objectStore(META).put(kept, `device:${identity.deviceId}`);
  });
  notify();
  return kept;
}

/** The exact bytes the server's offline protocol verifies: one JSON object, keys sorted,
 * no whitespace, ASCII only (ledger/flows/offline, "Canonical bytes of a record"). */
export function canonicalPayload(record) {
  if (record.kind === "handover") return handoverPayload(record);
  return JSON.stringify({
    agent_id: record.agentId,
    amount_minor: record.amountMinor,
    captured_at: record.capturedAt,
    consent_code: record.consentCode,
    currency: record.currency,
    device_id: record.deviceId,
    kind: record.kind,
    record_id: record.recordId,
    seq: record.seq,
    version: RECORD_VERSION,
    villager_id: record.villagerId,
  });
}

/** A hand-over's canonical bytes (version 3): the same keys, sorted, with the order and
 * the pickup code instead of a consent code. */
function handoverPayload(record) {
  return JSON.stringify({
    agent_id: record.agentId,
    amount_minor: record.amountMinor,
    captured_at: record.capturedAt,
    currency: record.currency,
    device_id: record.deviceId,
    kind: record.kind,
    order_id: record.orderId,
    pickup_code: record.pickupCode,
    record_id: record.recordId,
    seq: record.seq,
    version: HANDOVER_VERSION,
    villager_id: record.villagerId,
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function checkCapture({ kind, villagerId, amountMinor, currency, consentCode, orderId, pickupCode }) {
  const bad = (detail) => new QueueError("record_invalid", detail);
  const digits = (code) => new RegExp(`^\\d{${CODE_DIGITS}}$`).test(code ?? "");
  if (!UUID.test(villagerId)) throw bad("villager id is a lower-case UUID");
  if (!Number.isSafeInteger(amountMinor) || amountMinor < 1) throw bad("amount out of range");
  if (!/^[A-Z]{3}$/.test(currency)) throw bad("currency is three letters");
  if (kind === "handover") {
    if (!UUID.test(orderId ?? "")) throw bad("order id is a lower-case UUID");
    if (!digits(pickupCode)) throw bad("a pickup code is 6 digits");
    if (consentCode !== null && consentCode !== undefined) throw bad("a hand-over carries no consent code");
    return;
  }
  if (kind !== "cash_in" && kind !== "cash_out") throw bad("kind is cash_in, cash_out or handover");
  const codeOk = kind === "cash_in" ? consentCode === null : digits(consentCode);
  if (!codeOk) throw bad("a cash-out carries the villager's code; a cash-in none");
}

function nextSeq({ records, device, floor }) {
  const stored = records.length ? records[records.length - 1].seq : 0;
  return Math.max(stored, floor, device ? device.lastSeq : 0) + 1;
}

async function captureLocked(identity, wanted) {
  const state = await queueState(identity.deviceId);
  const left = allowanceLeft(state);
  if (CASH_KINDS.has(wanted.kind) && (left === null || wanted.amountMinor > left)) {
    throw new QueueError("allowance_spent", `${wanted.amountMinor} asked, ${left ?? 0} left`);
  }
  const record = { ...wanted, deviceId: identity.deviceId, agentId: identity.principalId,
    recordId: crypto.randomUUID(), seq: nextSeq(state), capturedAt: new Date().toISOString() };
  const payload = canonicalPayload(record);
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, identity.privateKey,
    encoder.encode(payload));
  const entry = { deviceId: record.deviceId, seq: record.seq, recordId: record.recordId,
    kind: record.kind, villagerId: record.villagerId, villagerName: wanted.villagerName ?? null,
    amountMinor: record.amountMinor, currency: record.currency, capturedAt: record.capturedAt,
    orderId: record.orderId ?? null, payload, signature: base64(signature), state: "queued",
    reason: null, operationId: null };
  await transact("readwrite", (tx) => {
    tx.objectStore(RECORDS).add(entry); // a seq taken meanwhile aborts: nothing is stored
  });
  return entry;
}

/** Capture one operation offline: { kind: "cash_in" | "cash_out" | "handover",
 * villagerId, villagerName (shown in history only), amountMinor (a safe integer),
 * currency, consentCode (a cash-out's six digits; null otherwise), and for a hand-over
 * orderId and pickupCode (six digits; villagerId, amountMinor and currency are then the
 * order's) }. Resolves to the stored record; rejects with QueueError allowance_spent (a
 * cash record beyond the allowance: nothing stored) or record_invalid. */
export async function capture(identity, wanted) {
  if (!identity || !identity.deviceId) throw new QueueError("device_unknown", "no device");
  checkCapture(wanted);
  const entry = await navigator.locks.request(CAPTURE_LOCK, () => captureLocked(identity, wanted));
  notify();
  return entry;
}

async function markSent(batch) {
  await transact("readwrite", (tx) => {
    for (const r of batch) tx.objectStore(RECORDS).put({ ...r, state: "sent" });
  });
}

/** Store each record's outcome; a settled record forgets its payload (a cash-out's code
 * is in it) and the oldest settled beyond SETTLED_KEPT_MAX are dropped, their seq kept. */
async function settle(deviceId, batch, outcomes) {
  const byId = new Map(outcomes.map((o) => [o.record_id, o]));
  await transact("readwrite", (tx) => {
    const store = tx.objectStore(RECORDS);
    for (const r of batch) {
      const o = byId.get(r.recordId);
      if (!o) continue;
      store.put({ ...r, state: o.state, reason: o.reason, operationId: o.cash_operation_id,
        payload: null, signature: null });
    }
  });
  await transact("readwrite", (tx) => {
    const all = tx.objectStore(RECORDS).getAll(rangeOf(deviceId));
    all.onsuccess = () => {
      const settled = all.result.filter((r) => !PENDING.has(r.state));
      const dropped = settled.slice(0, Math.max(0, settled.length - SETTLED_KEPT_MAX));
      if (dropped.length === 0) return;
      tx.objectStore(META).put(dropped[dropped.length - 1].seq, `floor:${deviceId}`);
      for (const r of dropped) tx.objectStore(RECORDS).delete([deviceId, r.seq]);
    };
  });
}

async function remember(deviceId, outcome) {
  await transact("readwrite", (tx) => {
    tx.objectStore(META).put({ at: new Date().toISOString(), ...outcome }, `sync:${deviceId}`);
  });
}

async function syncLocked(identity, api) {
  const done = { sent: 0, applied: 0, exceptions: 0 };
  for (let round = 0; round < SYNC_ROUNDS_MAX; round += 1) {
    const { records } = await queueState(identity.deviceId);
    const batch = records.filter((r) => PENDING.has(r.state)).slice(0, SYNC_BATCH_MAX);
    if (batch.length === 0) break;
    await markSent(batch);
    notify();
    const answer = await api.post(`/v1/devices/${identity.deviceId}/sync`,
      { records: batch.map((r) => ({ payload: r.payload, signature: r.signature })) });
    await settle(identity.deviceId, batch, answer.records);
    done.sent += batch.length;
    done.applied += answer.records.filter((o) => o.state === "applied").length;
    done.exceptions += answer.records.filter((o) => o.state === "exception").length;
  }
  await refreshDevice(api, identity);
  return done;
}

/** Send every pending record in capture order, unless a sync runs already (in this tab
 * or another): resolves to { busy: true } then, else { sent, applied, exceptions }.
 * A refusal or no network rejects (ApiProblem, TypeError); the records stay pending and
 * the failure is kept for the history screen. */
export async function syncNow(identity, api = createApi(identity)) {
  if (!identity || !identity.deviceId) throw new QueueError("device_unknown", "no device");
  try {
    return await navigator.locks.request(SYNC_LOCK, { ifAvailable: true }, async (lock) => {
      if (!lock) return { busy: true };
      try {
        const done = await syncLocked(identity, api);
        await remember(identity.deviceId, { ok: true, ...done });
        return done;
      } catch (error) {
        const code = error instanceof TypeError ? "network" : error.code || "failed";
        await remember(identity.deviceId, { ok: false, code, status: error.status ?? null });
        throw error;
      }
    });
  } finally {
    notify();
  }
}

/** A sync started by the app itself (start, `online`): failures are kept, not thrown. */
export async function syncInBackground() {
  const identity = await loadIdentity();
  if (!identity || !identity.deviceId || !navigator.onLine) return null;
  try {
    return await syncNow(identity);
  } catch (error) {
    return null;
  }
}

let started = false;

/** Sync when the network comes back and now when online (once per page). */
export function startAutoSync() {
  if (started) return;
  started = true;
  window.addEventListener("online", () => syncInBackground());
  syncInBackground();
}

startAutoSync(); // every screen of the app imports this module: it runs once per page
