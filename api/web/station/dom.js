// Elements for the station's screens. Text always goes in as textContent (never parsed
// as HTML), so a villager's name is shown as the characters it is.

/** A new `tag` element with `attributes` (set as attributes; `hidden` and `disabled` as
 * booleans) and `children` (strings become text nodes). */
export function el(tag, attributes = {}, ...children) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    made.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    made.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return made;
}

/** Remove every child of `node`. */
export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

/** A definition list of [label, value, id] rows. */
export function figures(rows, className = "figures") {
  const list = el("dl", { class: className });
  for (const [label, value, id] of rows) {
    list.append(el("div", {}, el("dt", {}, label), el("dd", { id }, value)));
  }
  return list;
}
