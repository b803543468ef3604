// The suspense queue: provider money nobody could match, parked until an operator moves
// it to whose it was (a villager's wallet or a storefront's proceeds) or proposes
// returning it through its provider (a second operator approves that on the proposals
// page). Auditors read. #/suspense?state=parked|reassigned|returned|all&after=ID

import { el, table, timeEl } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { idLink, pager } from "./render.js";
import { doneNote, listHash, proposedNote, reasonForm, send, stateFilter, stateOf } from "./decide.js";
import { t } from "/web/shared/i18n.js";

export const STATES = ["parked", "reassigned", "returned", "all"];
export const PAGE_SIZE = 50;
const UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
const hashOf = (state, after) => listHash("suspense", "parked", state, after);

function reassignForm(ctx, item, outcome) {
  const kind = el("select", { class: "to-kind", name: "to" },
    el("option", { value: "to_villager_id" }, t("a villager's wallet")),
    el("option", { value: "to_storefront_id" }, t("a storefront's proceeds")));
  const party = el("input", { class: "to-party", name: "party", required: true, pattern: UUID,
    maxlength: 36, placeholder: t("party id") });
  return el("form", { class: "inline", on: { submit: (event) => {
    event.preventDefault();
    send(ctx, `/v1/suspense/${encodeURIComponent(item.id)}/reassign`, { [kind.value]: party.value.trim() },
      outcome, () => doneNote(outcome, t("Moved to whose it was.")));
  } } }, kind, party, el("button", { type: "submit", class: "reassign" }, t("Move")));
}

function returnForm(ctx, item, outcome) {
  const path = `/v1/suspense/${encodeURIComponent(item.id)}/return`;
  return reasonForm(t("Propose return"), "propose-return", (reason) => send(ctx, path, { reason }, outcome,
    (made) => proposedNote(outcome, t("Return proposed: another operator approves it."), made)));
}

function controls(ctx, item) {
  if (item.state !== "parked" || !ctx.isOperator) return el("span", { class: "muted" }, "-");
  const outcome = el("div", { class: "outcome" });
  return el("div", { class: "controls" }, reassignForm(ctx, item, outcome), returnForm(ctx, item, outcome), outcome);
}

export async function renderSuspense(main, ctx) {
  const state = stateOf(ctx, STATES, "parked");
  const after = ctx.params.get("after") || "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state !== "all") query.set("state", state);
  if (after) query.set("starting_after", after);
  const page = await ctx.api.get(`/v1/suspense?${query}`);
  const cols = [{ label: t("Parked") }, { label: t("Provider") }, { label: t("Reference") },
    { label: t("Amount"), num: true }, { label: t("State") }, { label: t("Whose") }, { label: t("Decide") }];
  const rows = page.data.map((s) => [timeEl(s.created_at), s.provider,
    el("span", { class: "reference" }, s.provider_reference), moneyOrNote(s.amount_minor, s.currency),
    s.state === "returned" ? t("returned: {reason}", { reason: s.return_reason ?? "-" }) : s.state,
    idLink("party", s.target_party_id), controls(ctx, s)]);
  main.replaceChildren(
    el("h1", {}, t("Suspense queue")),
    el("p", { class: "muted" }, ctx.isOperator
      ? t("Move an item to whose it was, or propose returning it: another operator approves a return.")
      : t("Auditors read; operators decide.")),
    stateFilter(STATES, state, (chosen) => hashOf(chosen, null)),
    rows.length ? el("div", { id: "suspense" }, table(cols, rows))
      : el("p", { class: "muted", id: "no-suspense" }, t("Nothing in suspense here.")),
    pager(page, (cursor) => hashOf(state, cursor), after, (s) => s.id),
  );
}
