// Reconciliation runs: newest first, filtered by job, paged with the cursor; operators
// start a job that needs no outside file.

import { el, table, timeEl } from "/web/shared/dom.js";
import { problemEl } from "./dom.js";
import { t } from "/web/shared/i18n.js";

export const JOBS = ["integrity", "statement", "cash-count", "orders", "settlement", "ageing", "pack"];
export const STARTABLE = ["integrity", "orders", "ageing", "pack"];
export const PAGE_SIZE = 25;
export const PAGE_SIZE_MAX = 100;

function pageSize(params) {
  const asked = Number.parseInt(params.get("limit") ?? "", 10);
  return Number.isSafeInteger(asked) && asked >= 1 && asked <= PAGE_SIZE_MAX ? asked : PAGE_SIZE;
}

function runsHash(job, after, limit = PAGE_SIZE) {
  const query = new URLSearchParams();
  if (job) query.set("job", job);
  if (limit !== PAGE_SIZE) query.set("limit", String(limit));
  if (after) query.set("after", after);
  const text = query.toString();
  return text ? `#/runs?${text}` : "#/runs";
}

function filterForm(job) {
  const select = el("select", { id: "job-filter", name: "job", on: { change: () => {
    location.hash = runsHash(select.value, null);
  } } }, el("option", { value: "" }, t("All jobs")),
  JOBS.map((name) => el("option", { value: name, selected: name === job ? "selected" : null }, name)));
  return el("form", { class: "inline", on: { submit: (event) => event.preventDefault() } },
    el("label", {}, t("Job"), select));
}

function startForm(ctx) {
  const today = new Date().toISOString().slice(0, 10);
  const job = el("select", { id: "start-job", name: "job" },
    STARTABLE.map((name) => el("option", { value: name }, name)));
  const day = el("input", { id: "start-date", type: "date", value: today, required: true });
  const outcome = el("div", { id: "start-outcome" });
  const button = el("button", { type: "submit", id: "start" }, t("Start the job"));
  const form = el("form", { class: "inline", id: "start-form", on: { submit: async (event) => {
    event.preventDefault();
    button.disabled = true;
    outcome.replaceChildren(el("p", { class: "muted" }, t("Running...")));
    try {
      const run = await ctx.api.post("/v1/reconciliation/runs",
        { job: job.value, business_date: day.value });
      location.hash = `#/runs/${run.id}`;
    } catch (error) {
      outcome.replaceChildren(problemEl(error));
    } finally {
      button.disabled = false;
    }
  } } }, el("label", {}, t("Job"), job), el("label", {}, t("Business date"), day), button);
  return el("section", { class: "card" }, el("h2", {}, t("Start a job")), form, outcome);
}

export async function renderRuns(main, ctx) {
  const job = ctx.params.get("job") || "";
  const after = ctx.params.get("after") || "";
  const limit = pageSize(ctx.params);
  const query = new URLSearchParams({ limit: String(limit) });
  if (job) query.set("job", job);
  if (after) query.set("starting_after", after);
  const page = await ctx.api.get(`/v1/reconciliation/runs?${query}`);
  const cols = [{ label: t("Started") }, { label: t("Job") }, { label: t("Business date") },
    { label: t("Scope") }, { label: t("Attempt"), num: true }, { label: t("Checked"), num: true },
    { label: t("Breaks"), num: true }, { label: t("Status") }];
  const rows = page.data.map((run) => [
    el("a", { href: `#/runs/${run.id}`, class: "run-link" }, timeEl(run.started_at)),
    run.job, run.business_date, el("span", { class: "scope" }, run.scope), String(run.attempt),
    String(run.checked), String(run.breaks), el("span", { class: `status-${run.status}` }, run.status)]);
  const pager = el("div", { class: "pager" },
    after ? el("a", { href: runsHash(job, null, limit), id: "first-page" }, t("First page")) : null,
    page.has_more && page.data.length
      ? el("a", { href: runsHash(job, page.data[page.data.length - 1].id, limit),
        id: "next-page" }, t("Next page"))
      : null);
  main.replaceChildren(
    el("h1", {}, t("Reconciliation runs")),
    ctx.isOperator ? startForm(ctx) : "",
    filterForm(job),
    rows.length ? table(cols, rows) : el("p", { class: "muted" }, t("No runs.")),
    pager,
  );
  if (!ctx.isOperator) main.querySelector("h1").after(auditorNote());
}

function auditorNote() {
  return el("p", { class: "muted" }, t("Auditors read; operators start jobs."));
}
