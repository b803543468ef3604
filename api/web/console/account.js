// An account's history: who holds it, its counters, and its transfers in the order they
// were applied, each with the account's balance right after it. #/account/ID?after=T

import { el, facts, table, timeEl } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { card, idLink, pager } from "./render.js";
import { t } from "/web/shared/i18n.js";

export const PAGE_SIZE = 50;

function holderFacts(history) {
  const h = history.holder;
  if (!h) return [[t("Held by"), el("span", { class: "muted" }, t("no party (a tenant's own account)"))]];
  return [[t("Held by"), el("span", {}, idLink("party", h.party_id), " ", el("span", { class: "holder-name" }, h.name))],
    [t("Role"), `${h.kind} ${h.role}`]];
}

function lineRow(accountId, line, currency) {
  const tr = line.transfer;
  const debit = tr.debit_account_id === accountId;
  const other = debit ? tr.credit_account_id : tr.debit_account_id;
  const pending = tr.flags.includes("pending");
  return [timeEl(tr.created_at), idLink("transfer", tr.id), debit ? t("debit") : t("credit"),
    idLink("account", other), moneyOrNote(tr.amount, tr.currency),
    pending ? el("span", { class: "muted" }, t("held, not posted")) : moneyOrNote(line.balance_posted_after, currency),
    tr.flags.join(", ")];
}

export async function renderAccount(main, ctx, id) {
  const after = ctx.params.get("after") || "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) query.set("starting_after", after);
  const history = await ctx.api.get(`/v1/back-office/accounts/${encodeURIComponent(id)}/history?${query}`);
  const a = history.account;
  const cols = [{ label: t("When") }, { label: t("Transfer") }, { label: t("Side") },
    { label: t("Other account") }, { label: t("Amount"), num: true },
    { label: t("Balance after"), num: true }, { label: t("Flags") }];
  const rows = history.data.map((line) => lineRow(a.id, line, a.currency));
  const hashOf = (cursor) => cursor ? `#/account/${a.id}?after=${cursor}` : `#/account/${a.id}`;
  main.replaceChildren(
    el("h1", {}, t("Account {id}", { id: a.id })),
    card("account", t("Account"), facts([
      ...holderFacts(history),
      [t("Currency"), a.currency],
      [t("Code"), String(a.code)],
      [t("Balance posted"), moneyOrNote(a.credits_posted - a.debits_posted, a.currency)],
      [t("Debits posted"), moneyOrNote(a.debits_posted, a.currency)],
      [t("Credits posted"), moneyOrNote(a.credits_posted, a.currency)],
      [t("Debits pending"), moneyOrNote(a.debits_pending, a.currency)],
      [t("Credits pending"), moneyOrNote(a.credits_pending, a.currency)],
      [t("Flags"), a.flags.join(", ") || "-"],
      [t("Opened"), timeEl(a.created_at)],
    ])),
    card("history", t("History"), el("p", { class: "muted" },
      t("Balance after: credits posted less debits posted, right after the transfer.")),
    rows.length ? table(cols, rows) : el("p", { class: "muted" }, t("No transfers.")),
    pager(history, hashOf, after, (line) => line.transfer.id)),
  );
}
