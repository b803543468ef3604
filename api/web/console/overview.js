// Overview: the trial balance per currency and the integrity status (from the latest
// integrity run), the last sealed checkpoint, open items by age, the recent runs with
// breaks, the settlement windows not yet settled, and the agents whose float is low.

import { el, facts, table, timeEl } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { t } from "/web/shared/i18n.js";

export const RECENT_RUNS = 100;
export const WINDOWS_SHOWN = 50;
export const ALARMS_SHOWN = 50;
const CHECKPOINT_PAGES_MAX = 20;

function statusEl(run) {
  return el("span", { class: `status-${run.status}` },
    run.status === "ok" ? t("balanced, no breaks") : t("{breaks} breaks", { breaks: run.breaks }));
}

function trialBalance(summary) {
  const lines = Object.entries(summary.trial_balance ?? {});
  if (lines.length === 0) return el("p", { class: "muted" }, t("No accounts yet."));
  const cols = [{ label: t("Currency") }, { label: t("Debits posted"), num: true },
    { label: t("Credits posted"), num: true }, { label: t("Debits pending"), num: true },
    { label: t("Credits pending"), num: true }, { label: t("Accounts"), num: true }];
  return table(cols, lines.map(([currency, line]) => [currency,
    moneyOrNote(line.debits_posted, currency), moneyOrNote(line.credits_posted, currency),
    moneyOrNote(line.debits_pending, currency), moneyOrNote(line.credits_pending, currency),
    String(line.accounts)]));
}

async function integrityCard(ctx) {
  const card = el("section", { class: "card", id: "integrity" }, el("h2", {}, t("Trial balance and integrity")));
  const page = await ctx.api.get("/v1/reconciliation/runs?job=integrity&limit=1");
  if (page.data.length === 0) {
    card.append(el("p", { class: "muted" }, t("No integrity run yet.")));
    return { card, run: null };
  }
  const run = await ctx.api.get(`/v1/reconciliation/runs/${encodeURIComponent(page.data[0].id)}`);
  card.append(facts([
    [t("Status"), statusEl(run)],
    [t("Business date"), run.business_date],
    [t("Finished"), timeEl(run.finished_at)],
    [t("Run"), el("a", { href: `#/runs/${run.id}` }, run.id)],
  ]), trialBalance(run.summary ?? {}));
  return { card, run };
}

async function lastCheckpoint(ctx, sealedBlocks) {
  let after = Math.max(0, (Number.isSafeInteger(sealedBlocks) ? sealedBlocks : 0) - 1);
  let last = null;
  for (let i = 0; i < CHECKPOINT_PAGES_MAX; i += 1) {
    const page = await ctx.api.get(`/v1/checkpoints?limit=100&starting_after=${after}`);
    if (page.data.length > 0) last = page.data[page.data.length - 1];
    if (!page.has_more || page.data.length === 0) break;
    after = last.number;
  }
  return last;
}

async function checkpointCard(ctx, run) {
  const card = el("section", { class: "card", id: "checkpoint" }, el("h2", {}, t("Last sealed checkpoint")));
  const sealed = run && run.summary && run.summary.seal ? run.summary.seal.blocks : 0;
  const last = await lastCheckpoint(ctx, sealed);
  if (!last) {
    card.append(el("p", { class: "muted" }, t("Nothing sealed yet.")));
    return card;
  }
  card.append(facts([
    [t("Block"), String(last.number)],
    [t("Transfers sealed"), String(last.tree_size)],
    [t("Sealed"), timeEl(last.sealed_at)],
    [t("Root hash"), el("code", {}, last.root_hash)],
    [t("Signed by"), el("code", {}, `${last.key_name} ${last.key_id}`)],
  ]));
  return card;
}

async function breaksCard(ctx) {
  const card = el("section", { class: "card", id: "recent" },
    el("h2", {}, t("Recent runs with breaks")));
  const page = await ctx.api.get(`/v1/reconciliation/runs?limit=${RECENT_RUNS}`);
  const byJob = new Map();
  for (const run of page.data) {
    const line = byJob.get(run.job) ?? { runs: 0, withBreaks: 0, breaks: 0 };
    line.runs += 1;
    if (run.breaks > 0) line.withBreaks += 1;
    line.breaks += run.breaks;
    byJob.set(run.job, line);
  }
  card.append(el("p", { class: "muted" }, t("Of the latest {count} runs.", { count: page.data.length })));
  const cols = [{ label: t("Job") }, { label: t("Runs"), num: true },
    { label: t("Runs with breaks"), num: true }, { label: t("Breaks"), num: true }];
  const rows = [...byJob.entries()].map(([job, line]) => [
    el("a", { href: `#/runs?job=${encodeURIComponent(job)}` }, job),
    String(line.runs), String(line.withBreaks), String(line.breaks)]);
  card.append(rows.length ? table(cols, rows) : el("p", { class: "muted" }, t("No runs yet.")));
  return card;
}

function ageingRows(summary, currency, figures) {
  const line = (label, f) => [label, String(f.items), moneyOrNote(f.amount_minor, currency),
    f.weighted_age_days === null ? "-" : String(f.weighted_age_days)];
  return [...(summary.buckets ?? []).map((bucket) => line(bucket, figures.buckets[bucket])),
    line(t("overdue (breaks)"), figures.overdue), line(t("in transit (not breaks)"), figures.in_transit)];
}

async function ageingCard(ctx) {
  const card = el("section", { class: "card", id: "ageing" },
    el("h2", {}, t("Open items by age (suspense and clearing)")));
  const page = await ctx.api.get("/v1/reconciliation/runs?job=ageing&limit=20");
  const latest = page.data.find((run) => run.scope === "all");
  if (!latest) {
    card.append(el("p", { class: "muted" }, t("No ageing run yet.")));
    return card;
  }
  const run = await ctx.api.get(`/v1/reconciliation/runs/${encodeURIComponent(latest.id)}`);
  const summary = run.summary ?? {};
  card.append(facts([[t("Business date"), run.business_date],
    [t("Run"), el("a", { href: `#/runs/${run.id}` }, run.id)]]));
  const cols = [{ label: t("Age (days)") }, { label: t("Items"), num: true },
    { label: t("Amount"), num: true }, { label: t("Weighted age (days)"), num: true }];
  const currencies = Object.entries(summary.ageing ?? {});
  if (currencies.length === 0) card.append(el("p", { class: "muted" }, t("No open items.")));
  for (const [currency, figures] of currencies) {
    card.append(el("h2", {}, currency), table(cols, ageingRows(summary, currency, figures)));
  }
  return card;
}

async function windowsCard(ctx) {
  const card = el("section", { class: "card", id: "windows" },
    el("h2", {}, t("Settlement windows not yet settled")));
  const pages = await Promise.all(["open", "closed"].map((state) =>
    ctx.api.get(`/v1/settlement-windows?state=${state}&limit=${WINDOWS_SHOWN}`)));
  const windows = pages.flatMap((page) => page.data);
  const cols = [{ label: t("Currency") }, { label: t("State") }, { label: t("Opened") },
    { label: t("Closed") }, { label: t("Payouts"), num: true }, { label: t("Payouts total"), num: true }];
  const rows = windows.map((w) => [w.currency, el("span", { class: `window-${w.state}` }, w.state),
    timeEl(w.opened_at), timeEl(w.closed_at), String(w.payouts_count),
    moneyOrNote(w.payouts_total_minor, w.currency)]);
  card.append(rows.length ? table(cols, rows) : el("p", { class: "muted" }, t("Every window is settled.")));
  if (pages.some((page) => page.has_more)) {
    card.append(el("p", { class: "muted" }, t("The first {count} of each state.", { count: WINDOWS_SHOWN })));
  }
  return card;
}

async function floatCard(ctx) {
  const card = el("section", { class: "card", id: "float-alarms" },
    el("h2", {}, t("Float alarms (agents below their threshold)")));
  const page = await ctx.api.get(`/v1/back-office/float-alarms?limit=${ALARMS_SHOWN}`);
  const cols = [{ label: t("Agent") }, { label: t("Available"), num: true },
    { label: t("Threshold"), num: true }, { label: t("Held"), num: true }];
  const rows = page.data.map((f) => [el("a", { href: `#/party/${f.agent_id}` }, el("code", {}, f.agent_id)),
    moneyOrNote(f.available_minor, f.currency), moneyOrNote(f.low_threshold_minor, f.currency),
    moneyOrNote(f.held_minor, f.currency)]);
  card.append(rows.length ? table(cols, rows) : el("p", { class: "muted" }, t("No agent's float is low.")));
  if (page.has_more) card.append(el("p", { class: "muted" }, t("The first {count}.", { count: ALARMS_SHOWN })));
  return card;
}

export async function renderOverview(main, ctx) {
  const { card, run } = await integrityCard(ctx);
  const cards = [card, await checkpointCard(ctx, run), await ageingCard(ctx), await breaksCard(ctx),
    await windowsCard(ctx), await floatCard(ctx)];
  main.replaceChildren(el("h1", {}, t("Overview")), ...cards);
}
