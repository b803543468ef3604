// Money for people, as ledger/money.py writes it: minor units and the ISO 4217 exponent
// to "KES 1,250.00" (code, space, minus sign, thousands with commas, exactly `exponent`
// minor digits), with BigInt arithmetic only: no float ever touches an amount. A Number
// that is not a safe integer (above 2^53 - 1) is refused, never shown rounded.

let exponents = {};

/** Load the ISO 4217 exponents the server formats with (/web/shared/currencies.json). */
export async function loadCurrencies() {
  // "same-origin", as a page's <link rel="preload" as="fetch" crossorigin> fetches it
  // (a preload is used only by a request of the same credentials mode; no cookies exist).
  const answer = await fetch("/web/shared/currencies.json", { credentials: "same-origin" });
  if (!answer.ok) throw new Error(`currencies.json: HTTP ${answer.status}`);
  exponents = await answer.json();
}

/** The minor-unit exponent of `currency` (KES 2, UGX 0, BHD 3) among the loaded ones; an
 * unknown currency is a RangeError, never a guess. */
export function exponent(currency) {
  const digits = Object.hasOwn(exponents, currency) ? exponents[currency] : undefined;
  if (!Number.isInteger(digits)) throw new RangeError(`unknown currency ${String(currency).slice(0, 40)}`);
  return digits;
}

function asBigInt(minor) {
  if (typeof minor === "bigint") return minor;
  if (typeof minor === "number" && Number.isSafeInteger(minor)) return BigInt(minor);
  if (typeof minor === "string" && /^-?\d{1,40}$/.test(minor)) return BigInt(minor);
  throw new RangeError(`not an exact integer of minor units: ${String(minor).slice(0, 40)}`);
}

/** `minor` (a BigInt, a safe integer Number or a string of digits) of `currency` as
 * people read it: `formatMoney(125000, "KES") === "KES 1,250.00"`, `formatMoney(-5, "BHD")
 * === "BHD -0.005"`, `formatMoney(12500, "UGX") === "UGX 12,500"`. */
export function formatMoney(minor, currency, digits = exponent(currency)) {
  const value = asBigInt(minor);
  const sign = value < 0n ? "-" : "";
  const magnitude = value < 0n ? -value : value;
  const base = 10n ** BigInt(digits);
  const whole = (magnitude / base).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  let text = `${currency} ${sign}${whole}`;
  if (digits > 0) text += "." + (magnitude % base).toString().padStart(digits, "0");
  return text;
}

/** `money(125000, "KES") === "KES 1,250.00"` with the loaded exponents. */
export function money(minor, currency) {
  return formatMoney(minor, currency);
}

/** `money` that never throws: what cannot be shown exactly says so. */
export function moneyOrNote(minor, currency) {
  try {
    return money(minor, currency);
  } catch (error) {
    return `(${error.message})`;
  }
}

const AMOUNT = /^(\d{1,15})(?:\.(\d*))?$/;

/** The minor units (a BigInt > 0, at most 2^53 - 1) of an amount a person typed ("1250",
 * "1,250.50"); null when it is not one (too many decimals for the currency, not a
 * number, zero). */
export function parseAmount(text, currency, digits = exponent(currency)) {
  const found = AMOUNT.exec(String(text).trim().replaceAll(",", ""));
  if (!found) return null;
  const fraction = found[2] ?? "";
  if (fraction.length > digits) return null;
  const minor = BigInt(found[1]) * 10n ** BigInt(digits) + BigInt(fraction.padEnd(digits, "0") || "0");
  return minor > 0n && minor <= BigInt(Number.MAX_SAFE_INTEGER) ? minor : null;
}
