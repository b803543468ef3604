// Proposals waiting for a second operator (maker-checker): each kind's payload shown
// readably (money as money), approve and reject for operators. The maker's own proposal
// has approve disabled, saying why; auditors see no buttons at all (the API refuses them
// anyway). #/proposals?state=proposed|approved|rejected|all, #/proposals/ID.

import { el, facts, timeEl } from "/web/shared/dom.js";
import { readable, pager } from "./render.js";
import { actionButton, listHash, reasonForm, send, stateFilter, stateOf } from "./decide.js";
import { t } from "/web/shared/i18n.js";

export const STATES = ["proposed", "approved", "rejected", "all"];
export const PAGE_SIZE = 25;
const hashOf = (state, after) => listHash("proposals", "proposed", state, after);

function who(ctx, principal) {
  if (!principal) return el("span", { class: "muted" }, "-");
  return principal === ctx.identity.principalId
    ? t("you ({principal})", { principal }) : el("code", {}, principal);
}

function decide(ctx, proposal, action, body, outcome) {
  const path = `/v1/proposals/${encodeURIComponent(proposal.id)}/${action}`;
  return send(ctx, path, body, outcome, (decided) => {
    const fresh = proposalCard(ctx, decided);
    fresh.append(el("p", { class: "status-ok decided", role: "status" }, decided.state === "approved"
      ? t("Approved: applied once.") : t("Rejected: nothing was applied.")));
    outcome.closest("section.proposal").replaceWith(fresh);
  });
}

function approveControl(ctx, proposal, outcome) {
  const mine = proposal.proposed_by === ctx.identity.principalId;
  const button = actionButton(t("Approve"), "approve", () => decide(ctx, proposal, "approve", null, outcome),
    { disabled: mine });
  if (!mine) return button;
  return el("span", { class: "decide" }, button, el("span", { class: "refusal", role: "note" },
    t("You made this proposal: another operator must approve it (maker-checker).")));
}

function rejectControl(ctx, proposal, outcome) {
  return reasonForm(t("Reject"), "reject", (reason) => decide(ctx, proposal, "reject", { reason }, outcome));
}

function controls(ctx, proposal) {
  if (proposal.state !== "proposed") return null;
  if (!ctx.isOperator) return el("p", { class: "muted auditor-note" }, t("Auditors read; operators decide."));
  const outcome = el("div", { class: "outcome" });
  // The maker's own: no reject either (the flow's store refuses a maker deciding at all).
  const mine = proposal.proposed_by === ctx.identity.principalId;
  return el("div", { class: "controls" }, approveControl(ctx, proposal, outcome),
    mine ? null : rejectControl(ctx, proposal, outcome), outcome);
}

/** One proposal as a card: facts, the payload readably, the controls the viewer has. */
export function proposalCard(ctx, proposal) {
  const currency = typeof proposal.payload.currency === "string" ? proposal.payload.currency : null;
  return el("section", { class: "card proposal", id: `proposal-${proposal.id}`, "data-kind": proposal.kind },
    el("h2", {}, t("{kind} proposal", { kind: proposal.kind })),
    facts([
      [t("State"), el("span", { class: `state-${proposal.state}` }, proposal.state)],
      [t("Proposed by"), who(ctx, proposal.proposed_by)],
      [t("Proposed"), timeEl(proposal.created_at)],
      [t("Decided by"), who(ctx, proposal.decided_by)],
      [t("Decided"), timeEl(proposal.decided_at)],
      [t("Reason"), proposal.reason ?? "-"],
      [t("Proposal"), el("a", { href: `#/proposals/${proposal.id}` }, el("code", {}, proposal.id))],
    ]),
    el("h2", {}, t("What it does")),
    el("div", { class: "payload" }, readable("payload", proposal.payload, currency)),
    proposal.result !== null && proposal.result !== undefined
      ? el("details", {}, el("summary", {}, t("What applying it answered")), readable("result", proposal.result, currency))
      : null,
    controls(ctx, proposal));
}

export async function renderProposals(main, ctx) {
  const state = stateOf(ctx, STATES, "proposed");
  const after = ctx.params.get("after") || "";
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state !== "all") query.set("state", state);
  if (after) query.set("starting_after", after);
  const page = await ctx.api.get(`/v1/proposals?${query}`);
  main.replaceChildren(
    el("h1", {}, t("Proposals")),
    el("p", { class: "muted" }, t("Sensitive steps need two operators: one proposes, another approves.")),
    stateFilter(STATES, state, (chosen) => hashOf(chosen, null)),
    page.data.length ? "" : el("p", { class: "muted", id: "no-proposals" }, t("No proposals here.")),
    ...page.data.map((proposal) => proposalCard(ctx, proposal)),
    pager(page, (cursor) => hashOf(state, cursor), after, (p) => p.id),
  );
}

export async function renderProposal(main, ctx, id) {
  const proposal = await ctx.api.get(`/v1/proposals/${encodeURIComponent(id)}`);
  main.replaceChildren(el("h1", {}, t("Proposal")), proposalCard(ctx, proposal),
    el("p", {}, el("a", { href: "#/proposals" }, t("All proposals waiting"))));
}
