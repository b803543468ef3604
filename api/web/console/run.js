// One reconciliation run: its facts (where it read: the primary or a streaming replica,
// and the WAL positions its row records), its summary, its breaks (from detail.csv, the source
// of truth) and its files, each downloaded through a signed request; a file whose bytes
// changed since the run recorded them is refused (409 run_file_changed) and said in words.

import { signedFetch, answerOf } from "/web/shared/api.js";
import { el, facts, table, timeEl } from "/web/shared/dom.js";
import { problemEl } from "./dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { t } from "/web/shared/i18n.js";

export const BREAKS_SHOWN_MAX = 200;
const AMOUNT_COLUMN = /amount|debit|credit|expected|actual|counted|balance|difference|sum/;

/** RFC 4180 CSV text to rows of cells. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 1; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(cell); rows.push(row); row = []; cell = "";
    } else cell += c;
  }
  if (cell !== "" || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

function runPath(id, rest = "") {
  return `/v1/reconciliation/runs/${encodeURIComponent(id)}${rest}`;
}

function fileProblem(error, name) {
  if (error && error.code === "run_file_changed") {
    return el("p", { class: "problem", role: "alert" }, t("{name} changed after the run recorded it:" +
      " its SHA-256 no longer matches, so it is not served (409 run_file_changed).", { name }));
  }
  return problemEl(error);
}

async function download(ctx, run, name, outcome) {
  outcome.replaceChildren();
  try {
    const response = await signedFetch(ctx.identity, "GET", runPath(run.id, `/files/${name}`), { raw: true });
    if (!response.ok) await answerOf(response);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `${run.id}-${name.replaceAll("/", "_")}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    outcome.replaceChildren(el("span", { class: "muted" }, t("Downloaded.")));
  } catch (error) {
    outcome.replaceChildren(fileProblem(error, name));
  }
}

function filesCard(ctx, run) {
  const items = (run.files ?? []).map((name) => {
    const outcome = el("span", { class: "file-outcome" });
    const button = el("button", { type: "button", "data-file": name,
      on: { click: () => download(ctx, run, name, outcome) } }, t("Download"));
    return el("li", {}, el("code", {}, name), button, outcome);
  });
  return el("section", { class: "card", id: "files" }, el("h2", {}, t("Files")),
    items.length ? el("ul", { class: "files" }, items) : el("p", { class: "muted" }, t("No files here.")));
}

function breakCells(header, cells, runCurrency) {
  const currencyAt = header.indexOf("currency");
  const currency = currencyAt >= 0 ? cells[currencyAt] : runCurrency;
  return cells.map((cell, i) => (currency && AMOUNT_COLUMN.test(header[i]) && /^-?\d+$/.test(cell)
    ? moneyOrNote(cell, currency) : cell));
}

async function breaksCard(ctx, run) {
  const card = el("section", { class: "card", id: "breaks" }, el("h2", {}, t("Breaks")));
  if (run.breaks === 0) {
    card.append(el("p", { class: "status-ok" }, t("No breaks.")));
    return card;
  }
  if (!(run.files ?? []).includes("detail.csv")) {
    card.append(el("p", { class: "muted" }, t("The detail file is not here.")));
    return card;
  }
  try {
    const response = await signedFetch(ctx.identity, "GET", runPath(run.id, "/files/detail.csv"), { raw: true });
    if (!response.ok) await answerOf(response);
    const [header = [], ...lines] = parseCsv(await response.text());
    const shown = lines.slice(0, BREAKS_SHOWN_MAX);
    const cols = header.map((name) => ({ label: name, num: AMOUNT_COLUMN.test(name) }));
    // a job whose detail has no currency column (a statement's) names it in its summary
    const runCurrency = typeof run.summary?.currency === "string" ? run.summary.currency : "";
    card.append(table(cols, shown.map((cells) => breakCells(header, cells, runCurrency))));
    if (lines.length > shown.length) {
      card.append(el("p", { class: "muted" }, t("The first {shown} of {count} breaks; the detail file has them all.",
        { shown: shown.length, count: lines.length })));
    }
  } catch (error) {
    card.append(fileProblem(error, "detail.csv"));
  }
  return card;
}

const READ_SOURCES = { primary: () => t("the primary"), replica: () => t("a streaming replica") };

/** Where the run read, as text: the primary or a replica, and the two WAL positions. */
function readsFacts(run) {
  const source = READ_SOURCES[run.read_source];
  const lsn = (value) => (value ? el("code", {}, value) : el("span", { class: "muted" }, t("none")));
  return [
    [t("Read from"), el("span", { class: "read-source" }, source ? source() : String(run.read_source))],
    [t("Read LSN"), lsn(run.read_lsn)],
    [t("Close LSN"), lsn(run.close_lsn)],
  ];
}

function summaryCard(run) {
  const summary = run.summary ?? {};
  const pairs = Object.entries(summary)
    .filter(([, value]) => value === null || typeof value !== "object")
    .map(([key, value]) => [key, String(value)]);
  const byKind = Object.entries(summary.breaks_by_kind ?? {});
  return el("section", { class: "card", id: "summary" }, el("h2", {}, t("Summary")), facts(pairs),
    byKind.length ? el("h2", {}, t("Breaks by kind")) : null,
    byKind.length ? table([{ label: t("Kind") }, { label: t("Breaks"), num: true }],
      byKind.map(([kind, count]) => [kind, String(count)])) : null);
}

export async function renderRun(main, ctx, id) {
  const run = await ctx.api.get(runPath(id));
  main.replaceChildren(
    el("h1", {}, t("Run {job} for {date}", { job: run.job, date: run.business_date })),
    el("section", { class: "card" }, facts([
      [t("Status"), el("span", { class: `status-${run.status}` }, run.status)],
      [t("Scope"), el("span", { class: "scope" }, run.scope)],
      [t("Attempt"), String(run.attempt)],
      [t("Checked"), String(run.checked)],
      [t("Breaks"), String(run.breaks)],
      [t("Started"), timeEl(run.started_at)],
      [t("Finished"), timeEl(run.finished_at)],
      [t("Input SHA-256"), el("code", {}, run.input_sha256)],
      ...readsFacts(run),
      [t("Run"), el("code", {}, run.id)],
    ])),
    summaryCard(run),
    await breaksCard(ctx, run),
    filesCard(ctx, run),
    el("p", {}, el("a", { href: "#/runs" }, t("All runs"))),
  );
}
