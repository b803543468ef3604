// Shared pieces of the console's pages: links to an object's page, a pager, and a readable
// rendering of any JSON payload (a proposal's, an event's) with money shown as money.
// Everything goes in through el() (textContent only).

import { el, facts, table, timeEl } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { t } from "/web/shared/i18n.js";

export const NEST_DEPTH_MAX = 6;
const MONEY_KEY = /(_minor|^amount|_amount)$/;
const TIME_KEY = /(_at|_from|_until)$/;
const ID_PAGES = {
  party: "party", party_id: "party", villager_id: "party", storefront_id: "party", agent_id: "party",
  target_party_id: "party", account: "account", account_id: "account",
  debit_account_id: "account", credit_account_id: "account", target_account_id: "account",
  transfer: "transfer", transfer_id: "transfer", pending_id: "transfer", reverses_id: "transfer",
  order: "order", order_id: "order", proposal: "proposals",
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A link to the console page of an object (`kind` party, account, transfer, order,
 * proposals); the id as text. */
export function idLink(kind, id) {
  if (!id) return el("span", { class: "muted" }, "-");
  return el("a", { href: `#/${kind}/${encodeURIComponent(id)}`, class: `link-${kind}` },
    el("code", {}, String(id)));
}

/** Money of `currency`, or the bare integer when there is no currency to show it in. */
export function moneyCell(minor, currency) {
  if (minor === null || minor === undefined) return el("span", { class: "muted" }, "-");
  return currency ? moneyOrNote(minor, currency) : String(minor);
}

function scalar(key, value, currency) {
  if (value === null || value === undefined) return el("span", { class: "muted" }, "-");
  if (typeof value === "number" && MONEY_KEY.test(key) && currency) return moneyOrNote(value, currency);
  if (typeof value === "number" && /bps$/.test(key)) return t("{bps} bps", { bps: value });
  if (typeof value === "string" && UUID.test(value) && Object.hasOwn(ID_PAGES, key)) {
    return idLink(ID_PAGES[key], value);
  }
  if (typeof value === "string" && TIME_KEY.test(key) && !Number.isNaN(Date.parse(value))) {
    return timeEl(value);
  }
  if (typeof value === "boolean") return value ? t("yes") : t("no");
  return String(value);
}

function rowsTable(rows, currency, depth) {
  const keys = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cols = keys.map((key) => ({ label: key, num: MONEY_KEY.test(key) }));
  return table(cols, rows.map((row) => {
    const own = typeof row.currency === "string" ? row.currency : currency;
    return keys.map((key) => readable(key, row[key], own, depth + 1));
  }));
}

/** `value` (any JSON) as elements: objects as term/value lists, arrays of objects as
 * tables, amounts (`*_minor`, `amount`) as money of the nearest `currency` field. */
export function readable(key, value, currency = null, depth = 0) {
  if (depth > NEST_DEPTH_MAX) return el("code", {}, JSON.stringify(value).slice(0, 200));
  if (Array.isArray(value)) {
    if (value.length === 0) return el("span", { class: "muted" }, t("none"));
    if (value.every((v) => v && typeof v === "object" && !Array.isArray(v))) {
      return rowsTable(value, currency, depth);
    }
    return el("ul", { class: "plain" }, value.map((v) => el("li", {}, readable(key, v, currency, depth + 1))));
  }
  if (value && typeof value === "object") {
    const own = typeof value.currency === "string" ? value.currency : currency;
    const pairs = Object.entries(value).map(([k, v]) => [k, readable(k, v, own, depth + 1)]);
    return pairs.length ? facts(pairs) : el("span", { class: "muted" }, t("none"));
  }
  return scalar(key, value, currency);
}

/** Links to the first page and the next one (`hashOf(after)` gives a page's hash). */
export function pager(page, hashOf, after, cursorOf) {
  const last = page.data.length ? page.data[page.data.length - 1] : null;
  return el("div", { class: "pager" },
    after ? el("a", { href: hashOf(null), id: "first-page" }, t("First page")) : null,
    page.has_more && last ? el("a", { href: hashOf(cursorOf(last)), id: "next-page" }, t("Next page")) : null);
}

/** A card: a section with a heading and its content. */
export function card(id, heading, ...content) {
  return el("section", { class: "card", id }, el("h2", {}, heading), ...content);
}

export { timeEl };
