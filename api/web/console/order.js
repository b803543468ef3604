// An order's timeline: the order's figures as money and its events in the order they
// happened (paid, dispatched, delivered, released, refunded ...). #/order/ID?after=SEQ

import { el, facts, table, timeEl } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { card, idLink, pager, readable } from "./render.js";
import { t } from "/web/shared/i18n.js";

export const PAGE_SIZE = 50;

function orderFacts(o) {
  const m = (minor) => moneyOrNote(minor, o.currency);
  return facts([
    [t("State"), el("span", { class: "order-state" }, o.state)],
    [t("Amount"), m(o.amount_minor)],
    [t("Paid"), m(o.paid_minor)],
    [t("In escrow"), m(o.escrow_minor)],
    [t("Released"), m(o.released_minor)],
    [t("Refunded"), m(o.refunded_minor)],
    [t("Storefront"), idLink("party", o.storefront_id)],
    [t("Villager"), idLink("party", o.villager_id)],
    [t("Agent"), idLink("party", o.agent_id)],
    [t("Delivery"), o.delivery_method],
    [t("Paid with"), o.payment_source ?? "-"],
    [t("Created"), timeEl(o.created_at)],
    [t("Auto-release at"), timeEl(o.auto_release_at)],
  ]);
}

export async function renderOrder(main, ctx, id) {
  const after = ctx.params.get("after") || "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) query.set("starting_after", after);
  const timeline = await ctx.api.get(`/v1/back-office/orders/${encodeURIComponent(id)}/timeline?${query}`);
  const o = timeline.order;
  const cols = [{ label: t("When") }, { label: t("Event") }, { label: t("Details") }];
  const rows = timeline.data.map((e) => [timeEl(e.created_at), el("span", { class: "event-type" }, e.type),
    readable("payload", e.payload, o.currency)]);
  const hashOf = (cursor) => cursor ? `#/order/${o.id}?after=${cursor}` : `#/order/${o.id}`;
  main.replaceChildren(
    el("h1", {}, t("Order {id}", { id: o.id })),
    card("order", t("Order"), orderFacts(o)),
    card("timeline", t("Timeline"),
      rows.length ? table(cols, rows) : el("p", { class: "muted" }, t("No events yet.")),
      pager(timeline, hashOf, after, (e) => String(e.seq))),
  );
}
