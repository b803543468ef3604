// Money for people, as ledger/money.py writes it: minor units and the ISO 4217 exponent
// to "KES 1,250.00" (code, space, minus sign, thousands with commas, exactly `exponent`
// minor digits), with BigInt arithmetic only: no float ever touches an amount.

let exponents = {};

/** Load the ISO 4217 exponents the server uses (ledger.core.currency.MINOR_DIGITS). */
export async function loadCurrencies() {
  const answer = await fetch("/console/currencies.json", { credentials: "omit" });
  if (!answer.ok) throw new Error(`currencies.json: HTTP ${answer.status}`);
  exponents = await answer.json();
}

function asBigInt(minor) {
  if (typeof minor === "bigint") return minor;
  if (typeof minor === "number" && Number.isSafeInteger(minor)) return BigInt(minor);
  if (typeof minor === "string" && /^-?\d{1,40}$/.test(minor)) return BigInt(minor);
  throw new RangeError(`not an exact integer of minor units: ${String(minor).slice(0, 40)}`);
}

/** `formatMoney(125000, "KES", 2) === "KES 1,250.00"`; `formatMoney(-5, "BHD", 3) ===
 * "BHD -0.005"`; `formatMoney(12500, "UGX", 0) === "UGX 12,500"`. */
export function formatMoney(minor, currency, exponent) {
  const value = asBigInt(minor);
  const sign = value < 0n ? "-" : "";
  const magnitude = value < 0n ? -value : value;
  const base = 10n ** BigInt(exponent);
  const whole = (magnitude / base).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  let text = `${currency} ${sign}${whole}`;
  if (exponent > 0) text += "." + (magnitude % base).toString().padStart(exponent, "0");
  return text;
}

/** `money(125000, "KES") === "KES 1,250.00"` with the loaded exponents; an unknown
 * currency is an error, never a guess. */
export function money(minor, currency) {
  const exponent = Object.hasOwn(exponents, currency) ? exponents[currency] : undefined;
  if (!Number.isInteger(exponent)) throw new RangeError(`unknown currency ${String(currency)}`);
  return formatMoney(minor, currency, exponent);
}

/** `money` that never throws: what cannot be shown exactly says so. */
export function moneyOrNote(minor, currency) {
  try {
    return money(minor, currency);
  } catch (error) {
    return `(${error.message})`;
  }
}
