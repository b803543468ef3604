// Elements for the pages. Text always goes in as textContent (never parsed as HTML), so
// a villager's name or a server's detail is shown as the characters it is.

/** `el("a", { href: "#/runs", class: "here" }, "Runs", child)`: attributes are set as
 * attributes (`true` as a present boolean one; false, null and undefined left out);
 * `on: { click: fn }` adds listeners; strings and numbers become text nodes, arrays are
 * flattened, null/undefined children are skipped. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Remove every child of `node`. */
export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

/** A definition list of [label, value, id] rows, each pair in a <div>. */
export function figures(rows, className = "figures") {
  const list = el("dl", { class: className });
  for (const [label, value, id] of rows) {
    list.append(el("div", {}, el("dt", {}, label), el("dd", { id }, value)));
  }
  return list;
}

/** A definition list of [term, value] pairs. */
export function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.flatMap(([term, value]) => [el("dt", {}, term),
    el("dd", {}, value)]));
}

/** A table: `columns` [{ label, num }] and rows of cells (text or nodes). */
export function table(columns, rows) {
  const head = el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : null }, c.label)));
  const body = rows.map((cells) => el("tr", {},
    cells.map((cell, i) => el("td", { class: columns[i] && columns[i].num ? "num" : null }, cell))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

const UTC_TEXT = (date) => date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");

/** A <time> showing `iso` in the viewer's zone, with UTC on hover. */
export function timeEl(iso) {
  if (!iso) return el("span", { class: "muted" }, "-");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return el("span", {}, String(iso));
  const local = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" })
    .format(date);
  return el("time", { datetime: date.toISOString(), title: UTC_TEXT(date) }, local);
}
