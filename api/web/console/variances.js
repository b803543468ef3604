// Cash-count variances: an agent's counted cash over or short of what the ledger
// expects. Operators propose approving one (a second operator approves the proposal on
// the proposals page, which posts it) or reject it with a reason (nothing moves);
// auditors read. #/variances?state=proposed|approved|rejected|all&after=ID

import { el, table } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { idLink, pager } from "./render.js";
import { actionButton, doneNote, listHash, proposedNote, reasonForm, send, stateFilter, stateOf } from "./decide.js";
import { t } from "/web/shared/i18n.js";

export const STATES = ["proposed", "approved", "rejected", "all"];
export const PAGE_SIZE = 50;
const hashOf = (state, after) => listHash("variances", "proposed", state, after);

function controls(ctx, v) {
  if (v.state !== "proposed" || !ctx.isOperator) return el("span", { class: "muted" }, "-");
  const outcome = el("div", { class: "outcome" });
  const base = `/v1/variances/${encodeURIComponent(v.id)}`;
  const approve = actionButton(t("Propose approval"), "propose-approval", () => send(ctx, `${base}/approval`,
    {}, outcome, (made) => proposedNote(outcome, t("Approval proposed: another operator approves it."), made)));
  const reject = reasonForm(t("Reject"), "reject", (reason) => send(ctx, `${base}/reject`, { reason }, outcome,
    () => doneNote(outcome, t("Rejected: nothing was applied."))));
  return el("div", { class: "controls" }, approve, reject, outcome);
}

export async function renderVariances(main, ctx) {
  const state = stateOf(ctx, STATES, "proposed");
  const after = ctx.params.get("after") || "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state !== "all") query.set("state", state);
  if (after) query.set("starting_after", after);
  const page = await ctx.api.get(`/v1/variances?${query}`);
  const cols = [{ label: t("Agent") }, { label: t("Over or short") }, { label: t("Amount"), num: true },
    { label: t("Comment") }, { label: t("State") }, { label: t("Transfer") }, { label: t("Decide") }];
  const rows = page.data.map((v) => [idLink("party", v.agent_id), v.direction,
    moneyOrNote(v.amount_minor, v.currency), el("span", { class: "comment" }, v.comment),
    v.state === "rejected" ? t("rejected: {reason}", { reason: v.reject_reason ?? "-" }) : v.state,
    idLink("transfer", v.transfer_id), controls(ctx, v)]);
  main.replaceChildren(
    el("h1", {}, t("Cash-count variances")),
    el("p", { class: "muted" }, ctx.isOperator
      ? t("Approving a variance takes two operators: one proposes, another approves the proposal.")
      : t("Auditors read; operators decide.")),
    stateFilter(STATES, state, (chosen) => hashOf(chosen, null)),
    rows.length ? el("div", { id: "variances" }, table(cols, rows))
      : el("p", { class: "muted", id: "no-variances" }, t("No variances here.")),
    pager(page, (cursor) => hashOf(state, cursor), after, (v) => v.id),
  );
}
