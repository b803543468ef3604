// Webhook endpoints and their deliveries: where tenants' events are POSTed, and whether
// each delivery succeeded, is pending (and when it is tried next) or failed, with the
// last answer's status and error as text. #/webhooks, #/webhooks/ID?after=D

import { el, facts, table, timeEl } from "/web/shared/dom.js";
import { card, pager } from "./render.js";
import { t } from "/web/shared/i18n.js";

export const PAGE_SIZE = 50;

export async function renderWebhooks(main, ctx) {
  const after = ctx.params.get("after") || "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) query.set("starting_after", after);
  const page = await ctx.api.get(`/v1/webhook-endpoints?${query}`);
  const cols = [{ label: t("Endpoint") }, { label: t("State") }, { label: t("Events") },
    { label: t("Created") }, { label: t("Deliveries") }];
  const rows = page.data.map((e) => [el("span", { class: "endpoint-url" }, e.url),
    e.state === "disabled" ? t("disabled: {reason}", { reason: e.disabled_reason ?? "-" }) : e.state,
    e.event_types.join(", "), timeEl(e.created_at),
    el("a", { href: `#/webhooks/${e.id}`, class: "deliveries-link" }, t("Deliveries"))]);
  main.replaceChildren(
    el("h1", {}, t("Webhook deliveries")),
    rows.length ? table(cols, rows) : el("p", { class: "muted" }, t("No webhook endpoints.")),
    pager(page, (cursor) => (cursor ? `#/webhooks?after=${cursor}` : "#/webhooks"), after, (e) => e.id),
  );
}

export async function renderDeliveries(main, ctx, id) {
  const after = ctx.params.get("after") || "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) query.set("starting_after", after);
  const base = `/v1/webhook-endpoints/${encodeURIComponent(id)}`;
  const [endpoint, page] = await Promise.all([ctx.api.get(base), ctx.api.get(`${base}/deliveries?${query}`)]);
  const cols = [{ label: t("Created") }, { label: t("Event") }, { label: t("State") },
    { label: t("Attempts"), num: true }, { label: t("Last status"), num: true },
    { label: t("Last error") }, { label: t("Next attempt") }];
  const rows = page.data.map((d) => [timeEl(d.created_at), d.event_type,
    el("span", { class: `delivery-${d.state}` }, d.state), String(d.attempts),
    d.last_status_code === null ? "-" : String(d.last_status_code), d.last_error ?? "-",
    timeEl(d.next_attempt_at)]);
  const hashOf = (cursor) => (cursor ? `#/webhooks/${id}?after=${cursor}` : `#/webhooks/${id}`);
  main.replaceChildren(
    el("h1", {}, t("Deliveries to {url}", { url: endpoint.url })),
    card("endpoint", t("Endpoint"), facts([[t("State"), endpoint.state],
      [t("Events"), endpoint.event_types.join(", ")], [t("Description"), endpoint.description ?? "-"]])),
    rows.length ? table(cols, rows) : el("p", { class: "muted" }, t("No deliveries yet.")),
    pager(page, hashOf, after, (d) => d.id),
    el("p", {}, el("a", { href: "#/webhooks" }, t("All endpoints"))),
  );
}
