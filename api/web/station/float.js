// Placeholder: this screen is being built (see the station app's issue).

import { el } from "/web/shared/dom.js";

export async function renderFloat({ main }) {
  main.append(el("p", { class: "muted" }, "…"));
}
