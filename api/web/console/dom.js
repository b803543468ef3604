// The console's own element: a refusal in its words. Every other element comes from
// /web/shared/dom.js (textContent only: data never goes through innerHTML).

import { el } from "/web/shared/dom.js";
import { t } from "/web/shared/i18n.js";

/** A refusal or failure in words: the API's problem (status, code, detail) or an error. */
export function problemEl(error) {
  const text = error && error.status
    ? t("Refused ({status} {code}): {detail}",
      { status: error.status, code: error.code, detail: error.detail ?? "" })
    : t("Something went wrong: {message}", { message: error && error.message ? error.message : String(error) });
  return el("p", { class: "problem", role: "alert" }, text);
}
