// The console's words: the `console` gettext catalog (ledger/i18n/<language>/console.po),
// served as JSON. Code names a message by its English text: t("Overview"),
// t("{count} runs", { count: 3 }); a message missing from the catalog shows its English.

let words = {};
let chosen = "en";

export const LANGUAGES = ["en", "sw"];

/** The viewer's language among LANGUAGES (the browser's preference; English otherwise). */
export function preferredLanguage() {
  const wanted = (navigator.languages ?? [navigator.language ?? "en"]).map((l) => l.slice(0, 2));
  return wanted.find((l) => LANGUAGES.includes(l)) ?? "en";
}

export async function loadWords(language) {
  const answer = await fetch(`/console/i18n/${language}.json`, { credentials: "omit" });
  words = answer.ok ? await answer.json() : {};
  chosen = language;
}

export function currentLanguage() {
  return chosen;
}

/** The text of `msgid` with `{name}` placeholders filled from `values`. */
export function t(msgid, values = {}) {
  const text = Object.hasOwn(words, msgid) ? words[msgid] : msgid;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(values, name) ? String(values[name]) : whole);
}
