// Enrollment: type or paste the one-time code the back office issued; a fresh
// non-extractable Ed25519 key is made here and registered with it (/web/shared/enroll.js).
// A browser without WebCrypto Ed25519 gets a page saying so instead of the form.

import { requireEd25519 } from "/web/shared/keys.js";
import { enroll } from "/web/shared/enroll.js";
import { el } from "/web/shared/dom.js";
import { t } from "/web/shared/i18n.js";

const CODE_LENGTH_MAX = 64;

function unsupported(main, error) {
  main.append(
    el("h2", {}, t("This browser cannot be used")),
    el("p", { class: "error", role: "alert", id: "unsupported" },
      t("This app keeps its key on the phone with WebCrypto Ed25519, which this browser does not have. Update the browser (Chromium 137 or newer), then open this page again.")),
    el("p", { class: "muted" }, error.detail || error.message),
  );
}

export async function renderEnroll({ main, go, showProblem }) {
  try {
    await requireEd25519();
  } catch (error) {
    unsupported(main, error);
    return;
  }
  const input = el("input", { id: "code", name: "code", autocomplete: "off", autocapitalize:
    "characters", spellcheck: "false", maxlength: CODE_LENGTH_MAX, required: true });
  const button = el("button", { type: "submit", id: "enroll" }, t("Enroll this phone"));
  const form = el("form", { id: "enroll-form" },
    el("label", { for: "code" }, t("Enrollment code")), input, button);
  const outcome = el("div", { id: "outcome" });
  main.append(el("h2", {}, t("Enroll this phone")),
    el("p", {}, t("Type or paste the one-time code the back office gave you.")), form, outcome);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    outcome.replaceChildren();
    button.disabled = true;
    try {
      await enroll(input.value);
      go("home");
    } catch (error) {
      if (error.code === "enrollment_code_invalid") {
        outcome.append(el("p", { class: "error", role: "alert" },
          t("That code was not accepted. Check it, or ask the back office for a new one.")));
      } else {
        showProblem(outcome, error);
      }
    } finally {
      button.disabled = false;
    }
  });
}
