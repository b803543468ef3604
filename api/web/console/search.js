// Search: an id (party, account, transfer, order, proposal, payout, suspense item), a
// villager's phone number, or a provider's reference; each hit links to its page.
// #/search?q=TEXT

import { el, table } from "/web/shared/dom.js";
import { idLink, moneyCell } from "./render.js";
import { t } from "/web/shared/i18n.js";

export const QUERY_LENGTH_MAX = 128;
const PAGES = { party: "party", account: "account", transfer: "transfer", order: "order", proposal: "proposals" };

function target(hit) {
  if (hit.kind === "suspense_item") {
    return el("a", { href: "#/suspense?state=all", class: "link-suspense" }, el("code", {}, hit.id));
  }
  return Object.hasOwn(PAGES, hit.kind) ? idLink(PAGES[hit.kind], hit.id) : el("code", {}, hit.id);
}

function searchForm(text) {
  const input = el("input", { id: "q", name: "q", type: "search", value: text, required: true,
    maxlength: QUERY_LENGTH_MAX, autocomplete: "off", placeholder: t("id, +254..., or reference") });
  return el("form", { class: "inline", id: "search-form", on: { submit: (event) => {
    event.preventDefault();
    location.hash = `#/search?${new URLSearchParams({ q: input.value.trim() })}`;
  } } }, el("label", {}, t("Find"), input), el("button", { type: "submit", id: "search" }, t("Search")));
}

export async function renderSearch(main, ctx) {
  const text = (ctx.params.get("q") ?? "").trim();
  const parts = [el("h1", {}, t("Search")),
    el("p", { class: "muted" }, t("Exact matches only: an id, a villager's phone number, or a provider's reference.")),
    searchForm(text)];
  if (text) {
    const found = await ctx.api.get(`/v1/back-office/search?${new URLSearchParams({ q: text })}`);
    const cols = [{ label: t("Kind") }, { label: t("Matched by") }, { label: t("What") },
      { label: t("Amount"), num: true }, { label: t("Open") }];
    const rows = found.data.map((hit) => [hit.kind, hit.matched, hit.label,
      moneyCell(hit.amount_minor, hit.currency), target(hit)]);
    parts.push(rows.length ? table(cols, rows)
      : el("p", { class: "muted", id: "no-hits" }, t("Nothing has exactly that id, phone or reference.")));
  }
  main.replaceChildren(...parts);
  main.querySelector("#q")?.focus();
}
