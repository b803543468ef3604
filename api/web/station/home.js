// Home: the station's name (GET /v1/parties/{id}), the agent's float as the API reports
// it (GET /v1/agents/{id}/float) and a low-float warning. Cash on hand, commission this month, open cash-outs and the sync
// queue are not offered by the API yet (or come in a later part): the screen says so.

import { el, figures } from "/web/shared/dom.js";
import { answerOf } from "/web/shared/api.js";
import { language, t } from "/web/shared/i18n.js";
import { formatMoney } from "/web/shared/money.js";

/** The agent's float; `stale` when the service worker answered from its cache (no
 * network), `seenAt` the server's time of that answer. */
export async function floatOf(api, identity) {
  const response = await api.request("GET", `/v1/agents/${identity.principalId}/float`,
    { raw: true });
  const float = await answerOf(response);
  float.stale = response.headers.get("x-station-stale") === "1";
  float.seenAt = response.headers.get("date");
  return float;
}

function staleNote(float) {
  const seen = float.seenAt ? new Date(float.seenAt) : null;
  const time = seen && !Number.isNaN(seen.getTime())
    ? new Intl.DateTimeFormat(language(), { dateStyle: "medium", timeStyle: "short" }).format(seen)
    : "?";
  return el("p", { class: "warn", role: "status", id: "stale" },
    t("No network: these are the last figures this phone saw ({time}).", { time }));
}

export async function renderHome({ main, identity, api, go }) {
  const [party, float] = await Promise.all([
    api.get(`/v1/parties/${identity.principalId}`), floatOf(api, identity)]);
  main.append(el("h2", {}, t("Home")), el("p", { id: "station-name", class: "muted" }, party.name));
  const money = (minor) => formatMoney(minor, float.currency);
  if (float.stale) main.append(staleNote(float));
  main.append(figures([[t("Float available"), money(float.available_minor), "float-available"]],
    "figures big"));
  const rows = [
    [t("Float balance"), money(float.balance_minor), "float-balance"],
    [t("Held for cash-outs"), money(float.held_minor), "float-held"],
  ];
  if (float.low_threshold_minor !== null) {
    rows.push([t("Low-float level"), money(float.low_threshold_minor), "float-threshold"]);
  }
  main.append(figures(rows));
  if (float.low_threshold_minor !== null && float.available_minor < float.low_threshold_minor) {
    main.append(el("p", { class: "warn", role: "alert", id: "low-float" },
      t("Float is low: ask for a top-up before villagers need cash.")));
  }
  const cashIn = el("button", { type: "button", id: "go-cash-in" }, t("Cash in"));
  cashIn.addEventListener("click", () => go("cash-in"));
  main.append(cashIn, el("p", { class: "muted", id: "not-yet" },
    t("Not shown yet: cash on hand, commission this month and open cash-outs (the API does not offer them to this app yet).")));
}
