// A page's words: one gettext domain's catalog (ledger/i18n/<language>/<domain>.po),
// served as JSON at /web/i18n/<domain>/<language>.json. Code names a message by its
// English text: t("Overview"), t("{count} runs", { count: 3 }); a message missing from
// the catalog shows its English. How the language is chosen is the app's: a stored
// choice (pass a storage key) or the browser's preference.

export const LANGUAGES = { en: "English", sw: "Kiswahili" };
const FALLBACK = "en";
let words = {};
let chosen = FALLBACK;

/** The language of the loaded words. */
export function language() {
  return chosen;
}

/** The language to show: the one stored under `storageKey` (when given and known), else
 * the browser's preference among LANGUAGES, else English. */
export function preferredLanguage(storageKey = null) {
  const stored = storageKey ? localStorage.getItem(storageKey) : null;
  if (stored && Object.hasOwn(LANGUAGES, stored)) return stored;
  const wanted = (navigator.languages ?? [navigator.language ?? FALLBACK]).map((l) => l.slice(0, 2));
  return wanted.find((l) => Object.hasOwn(LANGUAGES, l)) ?? FALLBACK;
}

/** Load the `domain` catalog ("station", "console") in `wanted` (English when it is not
 * one of LANGUAGES); the choice is kept under `storageKey` when one is given. */
export async function loadWords(domain, wanted, storageKey = null) {
  const next = Object.hasOwn(LANGUAGES, wanted) ? wanted : FALLBACK;
  // "same-origin" (no cookies exist here) as a page's <link rel="preload" as="fetch"
  // crossorigin> asks it: with another credentials mode the preloaded answer is not used.
  const answer = await fetch(`/web/i18n/${encodeURIComponent(domain)}/${next}.json`,
    { credentials: "same-origin" });
  if (!answer.ok) throw new Error(`words: HTTP ${answer.status}`);
  words = await answer.json();
  chosen = next;
  if (storageKey) localStorage.setItem(storageKey, next);
}

/** The text of `msgid` with `{name}` placeholders filled from `values`. */
export function t(msgid, values = {}) {
  const text = Object.hasOwn(words, msgid) ? words[msgid] : msgid;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(values, name) ? String(values[name]) : whole);
}
