// Fee schedules: the version of a product's schedule in effect in a currency, its band
// table and what example amounts cost under it (money as money), and every version.
// New versions are proposed over the API and approved on the proposals page.
// #/fees?product=order&currency=KES

import { el, facts, table, timeEl } from "/web/shared/dom.js";
import { moneyOrNote } from "/web/shared/money.js";
import { problemEl } from "./dom.js";
import { card } from "./render.js";
import { t } from "/web/shared/i18n.js";

export const PRODUCTS = ["order", "cash_in", "cash_out", "transfer"];
export const VERSIONS_SHOWN = 100;
const PRODUCT = /^[a-z][a-z0-9_]{0,47}$/;
const CURRENCY = /^[A-Z]{3}$/;

function chooser(product, currency) {
  const productInput = el("input", { id: "product", name: "product", value: product, list: "products",
    required: true, pattern: PRODUCT.source.slice(1, -1), maxlength: 48 });
  const currencyInput = el("input", { id: "currency", name: "currency", value: currency, required: true,
    pattern: "[A-Z]{3}", maxlength: 3, size: 4 });
  return el("form", { class: "inline", id: "fee-form", on: { submit: (event) => {
    event.preventDefault();
    location.hash = `#/fees?${new URLSearchParams({ product: productInput.value, currency: currencyInput.value })}`;
  } } }, el("datalist", { id: "products" }, PRODUCTS.map((p) => el("option", { value: p }))),
  el("label", {}, t("Product"), productInput), el("label", {}, t("Currency"), currencyInput),
  el("button", { type: "submit", id: "show-fees" }, t("Show")));
}

function bandsTable(preview) {
  const m = (minor) => (minor === null ? t("no maximum") : moneyOrNote(minor, preview.currency));
  let from = 0;
  const rows = preview.bands.map((b) => {
    const row = [moneyOrNote(from, preview.currency),
      b.up_to_minor === null ? t("and above") : moneyOrNote(b.up_to_minor, preview.currency),
      moneyOrNote(b.fixed_minor, preview.currency), t("{bps} bps", { bps: b.bps }),
      moneyOrNote(b.min_minor, preview.currency), m(b.max_minor)];
    from = b.up_to_minor === null ? from : b.up_to_minor + 1;
    return row;
  });
  return table([{ label: t("From"), num: true }, { label: t("Up to"), num: true },
    { label: t("Fixed fee"), num: true }, { label: t("Rate"), num: true },
    { label: t("Minimum fee"), num: true }, { label: t("Maximum fee"), num: true }], rows);
}

function quotesTable(preview) {
  const m = (minor) => moneyOrNote(minor, preview.currency);
  return table([{ label: t("Amount"), num: true }, { label: t("Fee"), num: true },
    { label: t("Tax"), num: true }, { label: t("Agent commission"), num: true },
    { label: t("Platform income"), num: true }], preview.quotes.map((q) => [m(q.amount_minor),
    m(q.fee_minor), m(q.tax_minor), m(q.agent_commission_minor), m(q.platform_income_minor)]));
}

async function previewCard(ctx, product, currency) {
  const query = new URLSearchParams({ product, currency });
  try {
    const preview = await ctx.api.get(`/v1/fee-schedules/preview?${query}`);
    return card("preview", t("In effect: version {version}", { version: preview.version }),
      facts([[t("Tax"), t("{bps} bps of the fee", { bps: preview.tax_bps })],
        [t("Agent commission"), t("{bps} bps of the fee", { bps: preview.agent_commission_bps })]]),
      el("h2", {}, t("Bands")), bandsTable(preview),
      el("h2", {}, t("What amounts cost")), quotesTable(preview));
  } catch (error) {
    if (error && error.code === "fee_schedule_missing") {
      return card("preview", t("In effect"), el("p", { class: "muted", id: "no-schedule" },
        t("No schedule of {product} in {currency} is in effect.", { product, currency })));
    }
    return card("preview", t("In effect"), problemEl(error));
  }
}

async function versionsCard(ctx, product, currency) {
  const query = new URLSearchParams({ product, currency, limit: String(VERSIONS_SHOWN) });
  const page = await ctx.api.get(`/v1/fee-schedules?${query}`);
  const rows = page.data.map((v) => [String(v.version), timeEl(v.effective_from), timeEl(v.created_at)]);
  return card("versions", t("Versions"), rows.length
    ? table([{ label: t("Version"), num: true }, { label: t("Effective from") }, { label: t("Published") }], rows)
    : el("p", { class: "muted" }, t("No versions yet.")));
}

export async function renderFees(main, ctx) {
  const asked = ctx.params.get("product") ?? "order";
  const product = PRODUCT.test(asked) ? asked : "order";
  const wanted = ctx.params.get("currency") ?? "KES";
  const currency = CURRENCY.test(wanted) ? wanted : "KES";
  main.replaceChildren(
    el("h1", {}, t("Fee schedules")),
    el("p", { class: "muted" }, t("A new version is proposed over the API and published when a second operator approves it on the proposals page.")),
    chooser(product, currency),
    await previewCard(ctx, product, currency),
    await versionsCard(ctx, product, currency),
  );
}
