// Cash-count variances: an agent's counted cash over or short of what the ledger
// expects. Operators propose approving one (a second operator approves the proposal on
// the proposals page, which posts it) or reject it with a reason (nothing moves);
// auditors read. #/variances?state=proposed|approved|rejected|all&after=ID

import { el, table } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { problemEl } from "./dom.js";
import { idLink, pager } from "./render.js";
import { t } from "/web/shared/i18n.js";

export const STATES = ["proposed", "approved", "rejected", "all"];
export const PAGE_SIZE = 50;
export const REASON_LENGTH_MAX = 500;

function listHash(state, after) {
  const query = new URLSearchParams();
  if (state !== "proposed") query.set("state", state);
  if (after) query.set("after", after);
  const text = query.toString();
  return text ? `#/variances?${text}` : "#/variances";
}

async function send(ctx, path, body, outcome, done) {
  outcome.replaceChildren(el("span", { class: "muted" }, t("Sending...")));
  try {
    done(await ctx.api.post(path, body));
  } catch (error) {
    outcome.replaceChildren(problemEl(error));
  }
}

function controls(ctx, v) {
  if (v.state !== "proposed" || !ctx.isOperator) return el("span", { class: "muted" }, "-");
  const outcome = el("div", { class: "outcome" });
  const base = `/v1/variances/${encodeURIComponent(v.id)}`;
  const approve = el("button", { type: "button", class: "propose-approval", on: { click: () => {
    approve.disabled = true;
    send(ctx, `${base}/approval`, {}, outcome, (made) => outcome.replaceChildren(
      el("span", { class: "status-ok" }, t("Approval proposed: another operator approves it.")), " ",
      el("a", { href: `#/proposals/${made.proposal.id}`, class: "proposal-link" }, t("Open the proposal"))));
  } } }, t("Propose approval"));
  const reason = el("input", { class: "reason", name: "reason", required: true,
    maxlength: REASON_LENGTH_MAX, placeholder: t("Why (required)") });
  const reject = el("form", { class: "inline", on: { submit: (event) => {
    event.preventDefault();
    send(ctx, `${base}/reject`, { reason: reason.value.trim() }, outcome, () => outcome.replaceChildren(
      el("span", { class: "status-ok" }, t("Rejected: nothing was applied."))));
  } } }, reason, el("button", { type: "submit", class: "reject" }, t("Reject")));
  return el("div", { class: "controls" }, approve, reject, outcome);
}

function stateFilter(state) {
  const select = el("select", { id: "state-filter", name: "state", on: { change: () => {
    location.hash = listHash(select.value, null);
  } } }, STATES.map((name) => el("option", { value: name, selected: name === state ? "selected" : null }, name)));
  return el("form", { class: "inline", on: { submit: (event) => event.preventDefault() } },
    el("label", {}, t("State"), select));
}

export async function renderVariances(main, ctx) {
  const state = STATES.includes(ctx.params.get("state")) ? ctx.params.get("state") : "proposed";
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
    stateFilter(state),
    rows.length ? el("div", { id: "variances" }, table(cols, rows))
      : el("p", { class: "muted", id: "no-variances" }, t("No variances here.")),
    pager(page, (cursor) => listHash(state, cursor), after, (v) => v.id),
  );
}
