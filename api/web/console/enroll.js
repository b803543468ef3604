// Enrollment: paste the one-time code an operator issued; a fresh non-extractable key is
// made here and registered with it (/web/shared/enroll.js).

import { enroll } from "/web/shared/enroll.js";
import { el } from "/web/shared/dom.js";
import { problemEl } from "./dom.js";
import { t } from "/web/shared/i18n.js";

export const CODE_LENGTH_MAX = 64;

export function renderEnroll(main, { onEnrolled }) {
  const code = el("input", { id: "code", name: "code", autocomplete: "off", required: true,
    maxlength: CODE_LENGTH_MAX, placeholder: "XXXX-XXXX-XXXX-XXXX-XXXX" });
  const outcome = el("div", { id: "outcome" });
  const button = el("button", { type: "submit", id: "enroll" }, t("Enroll this browser"));
  const form = el("form", { class: "inline", on: { submit: async (event) => {
    event.preventDefault();
    button.disabled = true;
    outcome.replaceChildren(el("p", { class: "muted" }, t("Making a key and registering it...")));
    try {
      const identity = await enroll(code.value);
      outcome.replaceChildren(el("p", {}, t("Enrolled as {role}.", { role: identity.role })));
      onEnrolled(identity);
    } catch (error) {
      outcome.replaceChildren(problemEl(error));
    } finally {
      button.disabled = false;
    }
  } } }, el("label", {}, t("Enrollment code"), code), button);
  main.replaceChildren(
    el("h1", {}, t("Enroll this browser")),
    el("p", {}, t("Ask an operator for a one-time enrollment code for your auditor or operator" +
      " account, and paste it here. This browser makes its own key; it never leaves it.")),
    form,
    outcome,
  );
}
