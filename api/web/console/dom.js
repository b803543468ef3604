// Elements made with textContent only: data never goes through innerHTML.

import { t } from "./i18n.js";

/** `el("a", { href: "#/runs", class: "here" }, "Runs", child)`; `on: { click: fn }` adds
 * listeners; strings and numbers become text nodes; null/undefined children are skipped. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (name === "class") {
      node.className = String(value);
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
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

/** A table: `columns` [{ label, num }] and rows of cells (text or nodes). */
export function table(columns, rows) {
  const head = el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : null }, c.label)));
  const body = rows.map((cells) => el("tr", {},
    cells.map((cell, i) => el("td", { class: columns[i] && columns[i].num ? "num" : null }, cell))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

/** A definition list of [term, value] pairs. */
export function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.flatMap(([term, value]) => [el("dt", {}, term),
    el("dd", {}, value)]));
}

/** A refusal or failure in words: the API's problem (status, code, detail) or an error. */
export function problemEl(error) {
  const text = error && error.status
    ? t("Refused ({status} {code}): {detail}",
      { status: error.status, code: error.code, detail: error.detail ?? "" })
    : t("Something went wrong: {message}", { message: error && error.message ? error.message : String(error) });
  return el("p", { class: "problem", role: "alert" }, text);
}
