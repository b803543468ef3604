// The console's shell: the enrolled identity (or the enrollment page), the menu, and the
// page named by the location's hash: #/overview, #/proposals, #/proposals/ID,
// #/search?q=, #/party/ID, #/account/ID, #/transfer/ID, #/order/ID, #/fees,
// #/webhooks, #/webhooks/ID, #/variances, #/statements,
// #/suspense, #/commission, #/commission/ID, #/runs?job=J&after=ID, #/runs/ID.

import { loadIdentity, forgetIdentity, requireEd25519 } from "/web/shared/keys.js";
import { createApi } from "/web/shared/api.js";
import { el } from "/web/shared/dom.js";
import { problemEl } from "./dom.js";
import { loadCurrencies } from "/web/shared/money.js";
import { loadWords, preferredLanguage, t } from "/web/shared/i18n.js";
import { renderEnroll } from "./enroll.js";
import { renderOverview } from "./overview.js";
import { renderRuns } from "./runs.js";
import { renderRun } from "./run.js";
import { renderProposals, renderProposal } from "./proposals.js";
import { renderSearch } from "./search.js";
import { renderParty } from "./party.js";
import { renderAccount } from "./account.js";
import { renderTransfer } from "./transfer.js";
import { renderOrder } from "./order.js";
import { renderFees } from "./fees.js";
import { renderWebhooks, renderDeliveries } from "./webhooks.js";
import { renderVariances } from "./variances.js";
import { renderStatements } from "./statements.js";
import { renderSuspense } from "./suspense.js";
import { renderCommission, renderPayout } from "./commission.js";

export const CONSOLE_ROLES = ["auditor", "operator"];

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query) };
}

function menu(identity, here) {
  const link = (hash, label, name) =>
    el("a", { href: hash, class: here === name ? "here" : null }, label);
  document.getElementById("menu").replaceChildren(
    link("#/overview", t("Overview"), "overview"),
    link("#/proposals", t("Proposals"), "proposals"),
    link("#/search", t("Search"), "search"),
    link("#/fees", t("Fee schedules"), "fees"),
    link("#/webhooks", t("Webhooks"), "webhooks"),
    link("#/variances", t("Variances"), "variances"),
    link("#/statements", t("Statements"), "statements"),
    link("#/suspense", t("Suspense"), "suspense"),
    link("#/commission", t("Commission"), "commission"),
    link("#/runs", t("Reconciliation runs"), "runs"),
  );
  const forget = el("button", { type: "button", id: "forget", on: { click: async () => {
    await forgetIdentity();
    location.hash = "#/enroll";
    await route();
  } } }, t("Forget this key"));
  document.getElementById("who").replaceChildren(
    t("{role} {principal}", { role: identity.role, principal: identity.principalId }), " ", forget);
}

function wrongRole(main, identity) {
  main.replaceChildren(
    el("h1", {}, t("This key is not for the back office")),
    el("p", { class: "problem" },
      t("This browser holds a key with the role {role}; the console is for auditors and operators.",
        { role: identity.role })),
    el("button", { type: "button", id: "forget-wrong", on: { click: async () => {
      await forgetIdentity();
      await route();
    } } }, t("Forget this key")),
  );
}

/** Each page: [the page without an id, the page of one object (its id from the hash)]. */
const PAGES = {
  overview: [renderOverview, null],
  proposals: [renderProposals, renderProposal],
  search: [renderSearch, null],
  party: [renderSearch, renderParty],
  account: [renderSearch, renderAccount],
  transfer: [renderSearch, renderTransfer],
  order: [renderSearch, renderOrder],
  fees: [renderFees, null],
  webhooks: [renderWebhooks, renderDeliveries],
  variances: [renderVariances, null],
  statements: [renderStatements, null],
  suspense: [renderSuspense, null],
  commission: [renderCommission, renderPayout],
  runs: [renderRuns, renderRun],
};
const MENU_OF = { party: "search", account: "search", transfer: "search", order: "search" };

let generation = 0;

/** Show the page the hash names. A page is drawn off-screen and shown only if no later
 * route() started meanwhile: a slow answer never replaces the page the viewer moved to. */
export async function route() {
  const mine = ++generation;
  const main = document.getElementById("main");
  const identity = await loadIdentity();
  if (mine !== generation) return;
  const { parts, params } = parseHash();
  if (!identity) {
    document.getElementById("menu").replaceChildren();
    document.getElementById("who").replaceChildren();
    renderEnroll(main, { onEnrolled: () => { location.hash = "#/overview"; route(); } });
    return;
  }
  if (!CONSOLE_ROLES.includes(identity.role)) {
    wrongRole(main, identity);
    return;
  }
  const page = Object.hasOwn(PAGES, parts[0] ?? "") ? parts[0] : "overview";
  menu(identity, MENU_OF[page] ?? page);
  const ctx = { api: createApi(identity), identity, params, isOperator: identity.role === "operator" };
  main.replaceChildren(el("p", { class: "muted" }, t("Loading...")));
  const view = el("div");
  try {
    const [list, one] = PAGES[page];
    if (parts[1] && one) await one(view, ctx, decodeURIComponent(parts[1]));
    else await list(view, ctx);
  } catch (error) {
    view.replaceChildren(problemEl(error));
  }
  if (mine === generation) main.replaceChildren(...view.childNodes);
}

function unsupported(error) {
  document.getElementById("main").replaceChildren(
    el("h1", {}, t("This browser cannot hold a back office key")),
    el("p", { class: "problem", id: "unsupported" }, error.detail ?? error.message),
    el("p", {}, t("The console signs every request with a key that never leaves this browser" +
      " (WebCrypto Ed25519). Open it in a current Chromium, Firefox or Safari.")),
  );
}

async function main() {
  const language = preferredLanguage();
  document.documentElement.lang = language;
  await Promise.all([loadWords("console", language), loadCurrencies()]);
  document.title = t("Village Ledger back office");
  try {
    await requireEd25519();
  } catch (error) {
    unsupported(error);
    return;
  }
  window.addEventListener("hashchange", () => route());
  await route();
}

main().catch((error) => {
  document.getElementById("main").replaceChildren(problemEl(error));
});
