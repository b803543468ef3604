// Home: the station's name (GET /v1/parties/{id}), the agent's float (GET
// /v1/agents/{id}/float) with a low-float warning, the station's figures (GET
// /v1/agents/{id}/station: cash on hand, what open cash-outs promise of it, how many are
// open, commission this month), the records waiting in this phone's sync queue
// (queue.js) and the agent's till number (GET /v1/agents/{id}/till, shown only when the
// route answers). Without network the service worker answers with the last figures seen
// and the screen says so.

import { el, figures } from "/web/shared/dom.js";
import { answerOf } from "/web/shared/api.js";
import { language, t } from "/web/shared/i18n.js";
import { formatMoney } from "/web/shared/money.js";
import { pendingCount } from "./queue.js";

/** An API read with the service worker's staleness: `stale` when it answered from its
 * cache (no network), `seenAt` the server's time of that answer. */
async function readOf(api, path) {
  const response = await api.request("GET", path, { raw: true });
  const answer = await answerOf(response);
  answer.stale = response.headers.get("x-station-stale") === "1";
  answer.seenAt = response.headers.get("date");
  return answer;
}

/** The agent's float (see readOf for `stale` and `seenAt`). */
export async function floatOf(api, identity) {
  return readOf(api, `/v1/agents/${identity.principalId}/float`);
}

/** What `read` answers, or null when it fails for any reason but a refused key (a 401
 * is the whole screen's problem); for figures the home screen can do without. */
async function optional(read) {
  try {
    return await read();
  } catch (error) {
    if (error.status === 401) throw error;
    return null;
  }
}

function staleNote(float) {
  const seen = float.seenAt ? new Date(float.seenAt) : null;
  const time = seen && !Number.isNaN(seen.getTime())
    ? new Intl.DateTimeFormat(language(), { dateStyle: "medium", timeStyle: "short" }).format(seen)
    : "?";
  return el("p", { class: "warn", role: "status", id: "stale" },
    t("No network: these are the last figures this phone saw ({time}).", { time }));
}

function floatRows(float, money) {
  const rows = [
    [t("Float balance"), money(float.balance_minor), "float-balance"],
    [t("Float held"), money(float.held_minor), "float-held"],
  ];
  if (float.low_threshold_minor !== null) {
    rows.push([t("Low-float level"), money(float.low_threshold_minor), "float-threshold"]);
  }
  return rows;
}

function stationRows(station) {
  const money = (minor) => formatMoney(minor, station.currency);
  return [
    [t("Cash on hand"), money(station.cash_on_hand_minor), "cash-on-hand"],
    [t("Promised to open cash-outs"), money(station.cash_promised_minor), "cash-promised"],
    [t("Open cash-outs"), String(station.open_cash_outs), "open-cash-outs"],
    [t("Commission this month ({month})", { month: station.commission_month }),
      money(station.commission_month_minor), "commission-month"],
  ];
}

function shortcuts(go) {
  const box = el("div", { class: "shortcuts" });
  for (const [name, label] of [["cash-in", t("Cash in")], ["cash-out", t("Cash out")],
    ["orders", t("Orders")], ["float", t("Float")]]) {
    const button = el("button", { type: "button", id: `go-${name}` }, label);
    button.addEventListener("click", () => go(name));
    box.append(button);
  }
  return box;
}

export async function renderHome({ main, identity, api, go }) {
  const agent = identity.principalId;
  const [party, float, station, till, queued] = await Promise.all([
    api.get(`/v1/parties/${agent}`), floatOf(api, identity),
    optional(() => readOf(api, `/v1/agents/${agent}/station`)),
    optional(() => api.get(`/v1/agents/${agent}/till`)),
    optional(() => pendingCount()),
  ]);
  main.append(el("h2", {}, t("Home")), el("p", { id: "station-name", class: "muted" }, party.name));
  if (till && till.till_number) {
    main.append(el("p", { class: "till" }, t("Till number"), " ",
      el("strong", { id: "till-number" }, String(till.till_number))));
  }
  const money = (minor) => formatMoney(minor, float.currency);
  if (float.stale) main.append(staleNote(float));
  main.append(figures([[t("Float available"), money(float.available_minor), "float-available"]],
    "figures big"));
  if (float.low_threshold_minor !== null && float.available_minor < float.low_threshold_minor) {
    main.append(el("p", { class: "warn", role: "alert", id: "low-float" },
      t("Float is low: ask for a top-up before villagers need cash.")));
  }
  const rows = floatRows(float, money);
  if (station) rows.push(...stationRows(station));
  if (queued !== null) {
    rows.push([t("Waiting to be sent from this phone"), String(queued), "queue-pending"]);
  }
  main.append(figures(rows));
  if (queued > 0) {
    main.append(el("p", { class: "warn", role: "status", id: "queue-warning" },
      t("Some records are not sent yet: keep the phone online until they are.")));
  }
  main.append(shortcuts(go));
}
