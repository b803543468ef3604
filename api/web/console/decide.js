// The decision forms every console page shares: send an operator's POST and show what it
// answered (or the refusal, in words) in the row's outcome; a reason form (approve,
// reject, return: a reason is required); a one-click action; the note that links a
// proposal a second operator now approves; a list's state filter. Elements come from
// /web/shared/dom.js (textContent only).

import { el } from "/web/shared/dom.js";
import { problemEl } from "./dom.js";
import { t } from "/web/shared/i18n.js";

/** ledger.limits.REASON_LENGTH_MAX: the browser stops a longer reason; the API refuses it. */
export const REASON_LENGTH_MAX = 500;

/** POST `body` to `path` as the viewer; `done(answer)` once it is answered, else the
 * refusal in `outcome`. */
export async function send(ctx, path, body, outcome, done) {
  outcome.replaceChildren(el("span", { class: "muted" }, t("Sending...")));
  try {
    done(await ctx.api.post(path, body ?? {}));
  } catch (error) {
    outcome.replaceChildren(problemEl(error));
  }
}

/** A button that acts once per click (disabled while its request is out). */
export function actionButton(label, buttonClass, act, { disabled = false } = {}) {
  const button = el("button", { type: "button", class: buttonClass, disabled, on: { click: async () => {
    button.disabled = true;
    await act();
  } } }, label);
  return button;
}

/** A form of one required reason (trimmed, 1..REASON_LENGTH_MAX) and a submit button;
 * `act(reason)` on submit. */
export function reasonForm(label, buttonClass, act) {
  const reason = el("input", { class: "reason", name: "reason", required: true,
    maxlength: REASON_LENGTH_MAX, placeholder: t("Why (required)") });
  return el("form", { class: "inline", on: { submit: (event) => {
    event.preventDefault();
    act(reason.value.trim());
  } } }, el("label", {}, t("Reason"), reason), el("button", { type: "submit", class: buttonClass }, label));
}

/** `outcome` says `text` in the words of a step done. */
export function doneNote(outcome, text) {
  outcome.replaceChildren(el("span", { class: "status-ok" }, text));
}

/** `outcome` says `text` (e.g. "Return proposed: another operator approves it.") and
 * links the proposal that was made (answered as `{ proposal }`). */
export function proposedNote(outcome, text, made) {
  outcome.replaceChildren(el("span", { class: "status-ok" }, text), " ",
    el("a", { href: `#/proposals/${encodeURIComponent(made.proposal.id)}`, class: "proposal-link" },
      t("Open the proposal")));
}

/** The hash of a list `page` (#/page?state=S&after=ID); `fallback` is the state left out. */
export function listHash(page, fallback, state, after) {
  const query = new URLSearchParams();
  if (state !== fallback) query.set("state", state);
  if (after) query.set("after", after);
  const text = query.toString();
  return text ? `#/${page}?${text}` : `#/${page}`;
}

/** A select of `states` that opens `hashOf(state)` when changed. */
export function stateFilter(states, state, hashOf) {
  const select = el("select", { id: "state-filter", name: "state", on: { change: () => {
    location.hash = hashOf(select.value);
  } } }, states.map((name) => el("option", { value: name, selected: name === state ? "selected" : null }, name)));
  return el("form", { class: "inline", on: { submit: (event) => event.preventDefault() } },
    el("label", {}, t("State"), select));
}

/** The state a list shows: the hash's when it is one of `states`, else `fallback`. */
export function stateOf(ctx, states, fallback) {
  const state = ctx.params.get("state");
  return states.includes(state) ? state : fallback;
}
