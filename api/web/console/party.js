// A party: its kind, name (as text), currency and tier, a villager's phone and state,
// and its accounts with their balances, each linking to its history. #/party/ID

import { el, facts, table, timeEl } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { card, idLink } from "./render.js";
import { t } from "/web/shared/i18n.js";

async function villagerCard(ctx, party) {
  if (party.kind !== "villager") return null;
  const v = await ctx.api.get(`/v1/villagers/${encodeURIComponent(party.id)}`);
  return card("villager", t("Villager"), facts([
    [t("Phone"), v.phone],
    [t("State"), v.state],
    [t("Language"), v.language],
    [t("PIN tries left"), String(v.pin_tries_left)],
    [t("Registered by agent"), idLink("party", v.agent_id)],
    [t("Debit hold until"), timeEl(v.debit_hold_until)],
    [t("Registered"), timeEl(v.created_at)],
  ]));
}

async function accountsCard(ctx, party) {
  const roles = Object.entries(party.accounts ?? {});
  const accounts = await Promise.all(roles.map(([, id]) => ctx.api.get(`/v1/accounts/${encodeURIComponent(id)}`)));
  const cols = [{ label: t("Role") }, { label: t("Account") }, { label: t("Balance posted"), num: true },
    { label: t("Debits pending"), num: true }, { label: t("Credits pending"), num: true }];
  const rows = roles.map(([role], i) => {
    const a = accounts[i];
    return [role, idLink("account", a.id), moneyOrNote(a.credits_posted - a.debits_posted, a.currency),
      moneyOrNote(a.debits_pending, a.currency), moneyOrNote(a.credits_pending, a.currency)];
  });
  return card("accounts", t("Accounts"), rows.length ? table(cols, rows) : el("p", { class: "muted" }, t("No accounts.")));
}

export async function renderParty(main, ctx, id) {
  const party = await ctx.api.get(`/v1/parties/${encodeURIComponent(id)}`);
  main.replaceChildren(
    el("h1", {}, t("{kind}: {name}", { kind: party.kind, name: party.name })),
    card("party", t("Party"), facts([
      [t("Name"), el("span", { id: "party-name" }, party.name)],
      [t("Kind"), party.kind],
      [t("Currency"), party.currency],
      [t("KYC tier"), party.kyc_tier ?? "-"],
      [t("Party"), el("code", {}, party.id)],
    ])),
    await villagerCard(ctx, party),
    await accountsCard(ctx, party),
  );
}
