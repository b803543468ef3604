// The station's words: the `station` gettext catalog (ledger/i18n/<lang>/station.po),
// served as JSON at /station/i18n/<lang>.json. t("English text", { name }) returns the
// text in the chosen language (English when missing) with {name} placeholders filled.

export const LANGUAGES = { en: "English", sw: "Kiswahili" };
const CHOSEN = "station.language";
let words = {};
let chosen = "en";

export function language() {
  return chosen;
}

/** Load the catalog of the stored (or given) language. */
export async function loadWords(wanted = localStorage.getItem(CHOSEN) || "en") {
  const next = Object.hasOwn(LANGUAGES, wanted) ? wanted : "en";
  const answer = await fetch(`/station/i18n/${next}.json`, { credentials: "omit" });
  if (!answer.ok) throw new Error(`words: HTTP ${answer.status}`);
  words = await answer.json();
  chosen = next;
  localStorage.setItem(CHOSEN, next);
}

export function t(msgid, values = {}) {
  const text = Object.hasOwn(words, msgid) ? words[msgid] : msgid;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(values, name) ? String(values[name]) : whole);
}
