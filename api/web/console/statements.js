// Upload a provider's statement (CSV, camt.053 XML or MT940): operators send the file as
// it is, signed like every request; the statement job reconciles it now and the run's
// page shows its matches and breaks. Auditors read the runs. #/statements

import { signedFetch, answerOf } from "/web/shared/api.js";
import { el } from "/web/shared/dom.js";
import { problemEl } from "./dom.js";
import { t } from "/web/shared/i18n.js";

/** ledger.limits.STATEMENT_UPLOAD_BYTES_MAX: said here before sending; the server refuses more. */
export const STATEMENT_BYTES_MAX = 1_000_000;
const TYPE_OF_SUFFIX = { csv: "text/csv", xml: "application/xml", txt: "text/plain", sta: "text/plain",
  mt940: "text/plain" };
const TYPES = new Set(Object.values(TYPE_OF_SUFFIX));

function mediaOf(file) {
  if (TYPES.has(file.type)) return file.type;
  const suffix = (file.name.split(".").pop() ?? "").toLowerCase();
  return TYPE_OF_SUFFIX[suffix] ?? "application/octet-stream";
}

function field(label, attrs) {
  const input = el("input", attrs);
  return [input, el("label", {}, label, input)];
}

function queryOf(inputs) {
  const query = new URLSearchParams();
  for (const [name, input] of Object.entries(inputs)) {
    if (input.value.trim()) query.set(name, input.value.trim());
  }
  return query;
}

async function upload(ctx, inputs, file, outcome) {
  if (!file) throw new Error(t("Choose the statement's file."));
  if (file.size > STATEMENT_BYTES_MAX) {
    throw new Error(t("A statement is at most {bytes} bytes.", { bytes: STATEMENT_BYTES_MAX }));
  }
  const body = new Uint8Array(await file.arrayBuffer());
  const response = await signedFetch(ctx.identity, "POST",
    `/v1/reconciliation/statements?${queryOf(inputs)}`, { body, contentType: mediaOf(file), raw: true });
  const run = await answerOf(response);
  outcome.replaceChildren(el("p", { class: `status-${run.status}` },
    run.status === "ok" ? t("Reconciled: balanced, no breaks.") : t("Reconciled: {breaks} breaks.", { breaks: run.breaks }),
    " ", el("a", { href: `#/runs/${run.id}`, id: "statement-run" }, t("Open the run"))));
}

function uploadForm(ctx) {
  const today = new Date().toISOString().slice(0, 10);
  const [provider, providerLabel] = field(t("Provider"), { id: "provider", required: true,
    pattern: "[A-Z0-9_]{1,32}", maxlength: 32, placeholder: "MPESA" });
  const [day, dayLabel] = field(t("Business date"), { id: "business-date", type: "date", value: today, required: true });
  const [currency, currencyLabel] = field(t("Currency"), { id: "statement-currency", pattern: "[A-Z]{3}", maxlength: 3, size: 4 });
  const [columns, columnsLabel] = field(t("CSV columns (optional)"), { id: "columns", maxlength: 200,
    placeholder: "date:Date,amount:Amount,reference:Ref" });
  const [opening, openingLabel] = field(t("Opening balance (optional)"), { id: "opening", maxlength: 200 });
  const [closing, closingLabel] = field(t("Closing balance (optional)"), { id: "closing", maxlength: 200 });
  const [file, fileLabel] = field(t("Statement file"), { id: "statement-file", type: "file", required: true,
    accept: ".csv,.xml,.txt,.sta,.mt940" });
  const outcome = el("div", { id: "upload-outcome" });
  const button = el("button", { type: "submit", id: "upload" }, t("Upload and reconcile"));
  const inputs = { provider, business_date: day, currency, columns, opening, closing };
  const form = el("form", { class: "inline", id: "statement-form", on: { submit: async (event) => {
    event.preventDefault();
    button.disabled = true;
    outcome.replaceChildren(el("p", { class: "muted" }, t("Sending...")));
    try {
      await upload(ctx, inputs, file.files[0], outcome);
    } catch (error) {
      outcome.replaceChildren(problemEl(error));
    } finally {
      button.disabled = false;
    }
  } } }, providerLabel, dayLabel, currencyLabel, columnsLabel, openingLabel, closingLabel, fileLabel, button);
  return el("section", { class: "card" }, el("h2", {}, t("Upload a statement")), form, outcome);
}

export async function renderStatements(main, ctx) {
  main.replaceChildren(
    el("h1", {}, t("Provider statements")),
    el("p", { class: "muted" }, t("A statement is reconciled against the provider's clearing account when it is uploaded; every run is listed under reconciliation runs.")),
    ctx.isOperator ? uploadForm(ctx) : el("p", { class: "muted", id: "auditor-statements" }, t("Auditors read the runs; operators upload statements.")),
    el("p", {}, el("a", { href: "#/runs?job=statement" }, t("Statement runs"))),
  );
}
