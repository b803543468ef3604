// Agents' commission payouts: a month (UTC) per currency, who got what. Operators pay a
// month that is over: to the agents' floats at once, or through a provider as a proposal
// a second operator approves on the proposals page (money leaving the platform).
// Auditors read. #/commission?after=ID, #/commission/ID.

import { el, facts, table, timeEl } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { idLink, pager } from "./render.js";
import { doneNote, proposedNote, send } from "./decide.js";
import { t } from "/web/shared/i18n.js";

export const PAGE_SIZE = 50;
const hashOf = (after) => (after ? `#/commission?after=${encodeURIComponent(after)}` : "#/commission");

function lastMonth() {
  const now = new Date();
  const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return month.toISOString().slice(0, 7);
}

function whereTo(payout) {
  return payout.to === "provider" ? t("through {provider}", { provider: payout.provider }) : t("the agents' floats");
}

function payForm(ctx) {
  const outcome = el("div", { class: "outcome", id: "pay-outcome" });
  const month = el("input", { id: "pay-month", name: "month", type: "month", value: lastMonth(), required: true });
  const currency = el("input", { id: "pay-currency", name: "currency", value: "KES", required: true,
    pattern: "[A-Z]{3}", maxlength: 3, size: 4 });
  const to = el("select", { id: "pay-to", name: "to" },
    el("option", { value: "float" }, t("the agents' floats")),
    el("option", { value: "provider" }, t("a provider")));
  const provider = el("input", { id: "pay-provider", name: "provider", pattern: "[A-Z0-9]{1,32}",
    maxlength: 32, placeholder: "MPESA" });
  const form = el("form", { class: "inline", id: "pay-form", on: { submit: (event) => {
    event.preventDefault();
    const body = { month: month.value, currency: currency.value.trim(), to: to.value };
    if (to.value === "provider") body.provider = provider.value.trim();
    send(ctx, "/v1/commission-payouts", body, outcome, (made) => (made.proposal
      ? proposedNote(outcome, t("Payout proposed: another operator approves it."), made)
      : doneNote(outcome, t("Paid: {count} agents, {total}.", { count: made.lines_count,
        total: moneyOrNote(made.total_minor, made.currency) }))));
  } } }, el("label", {}, t("Month"), month), el("label", {}, t("Currency"), currency),
  el("label", {}, t("To"), to), el("label", {}, t("Provider"), provider),
  el("button", { type: "submit", id: "pay" }, t("Pay")));
  return el("section", { class: "card", id: "pay-month-card" }, el("h2", {}, t("Pay a month")),
    el("p", { class: "muted" }, t("To the agents' floats at once; through a provider, another operator approves it.")),
    form, outcome);
}

export async function renderCommission(main, ctx) {
  const after = ctx.params.get("after") || "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) query.set("starting_after", after);
  const page = await ctx.api.get(`/v1/commission-payouts?${query}`);
  const cols = [{ label: t("Month") }, { label: t("To") }, { label: t("Agents"), num: true },
    { label: t("Total"), num: true }, { label: t("Made by") }, { label: t("Made") }];
  const rows = page.data.map((p) => [
    el("a", { href: `#/commission/${encodeURIComponent(p.id)}`, class: "payout-link" }, `${p.month} ${p.currency}`),
    whereTo(p), String(p.lines_count), moneyOrNote(p.total_minor, p.currency),
    p.made_by ? el("code", {}, p.made_by) : el("span", { class: "muted" }, t("the command line")),
    timeEl(p.created_at)]);
  main.replaceChildren(
    el("h1", {}, t("Commission payouts")),
    ctx.isOperator ? payForm(ctx) : el("p", { class: "muted" }, t("Auditors read; operators decide.")),
    rows.length ? el("div", { id: "payouts" }, table(cols, rows))
      : el("p", { class: "muted", id: "no-payouts" }, t("No commission payouts yet.")),
    pager(page, hashOf, after, (p) => p.id),
  );
}

export async function renderPayout(main, ctx, id) {
  const after = ctx.params.get("after") || "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) query.set("starting_after", after);
  const payout = await ctx.api.get(`/v1/commission-payouts/${encodeURIComponent(id)}?${query}`);
  const cols = [{ label: t("Agent") }, { label: t("Earned"), num: true }, { label: t("Paid"), num: true },
    { label: t("Transfer") }];
  const rows = payout.lines.map((line) => [idLink("party", line.agent_id),
    moneyOrNote(line.earned_minor, payout.currency), moneyOrNote(line.amount_minor, payout.currency),
    idLink("transfer", line.transfer_id)]);
  const last = payout.lines.length ? payout.lines[payout.lines.length - 1] : null;
  const base = `#/commission/${encodeURIComponent(id)}`;
  main.replaceChildren(
    el("h1", {}, t("Commission payout {month} {currency}", { month: payout.month, currency: payout.currency })),
    el("section", { class: "card", id: "payout" }, facts([
      [t("To"), whereTo(payout)],
      [t("Agents"), String(payout.lines_count)],
      [t("Total"), moneyOrNote(payout.total_minor, payout.currency)],
      [t("Made by"), payout.made_by ? el("code", {}, payout.made_by) : t("the command line")],
      [t("Made"), timeEl(payout.created_at)],
    ])),
    rows.length ? el("div", { id: "lines" }, table(cols, rows))
      : el("p", { class: "muted", id: "no-lines" }, t("No agent earned commission that month.")),
    el("div", { class: "pager" },
      after ? el("a", { href: base, id: "first-page" }, t("First page")) : null,
      payout.lines_has_more && last
        ? el("a", { href: `${base}?after=${encodeURIComponent(last.agent_id)}`, id: "next-page" }, t("Next page"))
        : null),
    el("p", {}, el("a", { href: "#/commission" }, t("All payouts"))),
  );
}
