// Money for people, the rule of ledger/money.py: "KES 1,250.00" from integer minor units
// and the currency's ISO 4217 exponent; integer arithmetic (BigInt) only, never floats.

let exponents = {};

/** Load the ISO 4217 exponents the server formats with (/station/currencies.json). */
export async function loadCurrencies() {
  const answer = await fetch("/station/currencies.json", { credentials: "omit" });
  if (!answer.ok) throw new Error(`currencies: HTTP ${answer.status}`);
  exponents = await answer.json();
}

/** The minor-unit exponent of `currency` (KES 2, UGX 0, BHD 3); throws for an unknown one. */
export function exponent(currency) {
  const digits = exponents[currency];
  if (!Number.isInteger(digits)) throw new Error(`unknown currency ${currency}`);
  return digits;
}

function grouped(digits) {
  let out = "";
  for (let i = 0; i < digits.length; i += 1) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += ",";
    out += digits[i];
  }
  return out;
}

/** `amountMinor` (an integer Number, a BigInt or a string of digits) of `currency` as
 * people read it: "KES 1,250.00", "UGX 12,500", "KES -1,250.00". */
export function formatMoney(amountMinor, currency, digits = exponent(currency)) {
  let amount = BigInt(amountMinor);
  const sign = amount < 0n ? "-" : "";
  if (amount < 0n) amount = -amount;
  const scale = 10n ** BigInt(digits);
  let text = `${currency} ${sign}${grouped((amount / scale).toString())}`;
  if (digits > 0) text += "." + (amount % scale).toString().padStart(digits, "0");
  return text;
}

const AMOUNT = /^(\d{1,15})(?:\.(\d*))?$/;

/** The minor units (a BigInt > 0) of an amount a person typed ("1250", "1,250.50");
 * null when it is not one (too many decimals for the currency, not a number, zero). */
export function parseAmount(text, currency, digits = exponent(currency)) {
  const found = AMOUNT.exec(String(text).trim().replaceAll(",", ""));
  if (!found) return null;
  const fraction = found[2] ?? "";
  if (fraction.length > digits) return null;
  const minor = BigInt(found[1]) * 10n ** BigInt(digits) + BigInt(fraction.padEnd(digits, "0") || "0");
  return minor > 0n && minor <= BigInt(Number.MAX_SAFE_INTEGER) ? minor : null;
}
