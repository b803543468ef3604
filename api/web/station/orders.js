// Placeholder: this screen is being built (see the station app's issue).

import { el } from "/web/shared/dom.js";

export async function renderOrders({ main }) {
  main.append(el("p", { class: "muted" }, "…"));
}
