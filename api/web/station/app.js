// The station app's shell: the enrolled identity (IndexedDB), the screen named by the
// hash (#/home, #/cash-in; #/enroll until the phone is enrolled), the menu, the language
// switch and the service worker (the app opens with no network after one visit).
//
// For a first load on 2G (bench/station.py): only the shell and the enrollment screen are
// in the first module graph (index.html preloads them, and the words and currencies); every
// other screen is imported when it is first shown; the service worker is registered only
// once the first screen is drawn, so that its precache does not compete with it for the
// phone's few connections; and the sync queue (queue.js, which syncs by itself when the
// network comes back) is loaded beside the first screen of an enrolled phone.

import { loadIdentity } from "/web/shared/keys.js";
import { createApi } from "/web/shared/api.js";
import { clear, el } from "/web/shared/dom.js";
import { LANGUAGES, language, loadWords, preferredLanguage, t } from "/web/shared/i18n.js";
import { loadCurrencies } from "/web/shared/money.js";

// Each screen: its module, imported when first shown, and its render function.
const SCREENS = {
  enroll: () => import("./enroll.js").then((m) => m.renderEnroll),
  home: () => import("./home.js").then((m) => m.renderHome),
  "cash-in": () => import("./cashin.js").then((m) => m.renderCashIn),
  "cash-out": () => import("./cashout.js").then((m) => m.renderCashOut),
  villagers: () => import("./villagers.js").then((m) => m.renderVillagers),
  orders: () => import("./orders.js").then((m) => m.renderOrders),
  float: () => import("./float.js").then((m) => m.renderFloat),
  history: () => import("./history.js").then((m) => m.renderHistory),
};
const CHOSEN = "station.language"; // localStorage: the language chosen on this phone

function go(name) {
  if (location.hash === `#/${name}`) show();
  else location.hash = `#/${name}`;
}

function renderLanguages() {
  const box = document.getElementById("languages");
  clear(box);
  for (const [code, name] of Object.entries(LANGUAGES)) {
    const button = el("button", { type: "button", lang: code, "data-language": code,
      title: name, "aria-label": name, "aria-pressed": String(code === language()) },
    code.toUpperCase());
    button.addEventListener("click", async () => {
      await loadWords("station", code, CHOSEN);
      await show();
    });
    box.append(button);
  }
}

function renderMenu(identity, current) {
  const menu = document.getElementById("menu");
  clear(menu);
  if (!identity) return;
  const items = [["home", t("Home")], ["cash-in", t("Cash in")], ["cash-out", t("Cash out")],
    ["villagers", t("Villagers")], ["orders", t("Orders")], ["float", t("Float")],
    ["history", t("History")]];
  for (const [name, label] of items) {
    const button = el("button", { type: "button", "data-screen": name,
      class: name === current ? "" : "secondary", "aria-current": name === current ? "page" : false },
    label);
    button.addEventListener("click", () => go(name));
    menu.append(button);
  }
}

/** A refusal or a failure in words on `main`. */
export function showProblem(main, error) {
  let text = t("Something went wrong: {reason}", { reason: error.code || error.message });
  if (error.status === 401) text = t("This phone is no longer allowed (its key was revoked or is unknown). Ask the back office for a new enrollment code.");
  else if (error instanceof TypeError) text = t("No network. Try again when the phone is online.");
  main.append(el("p", { class: "error", role: "alert" }, text));
}

async function show() {
  const identity = await loadIdentity();
  let name = location.hash.replace(/^#\//, "") || "home";
  if (!identity) name = "enroll";
  else if (name === "enroll" || !Object.hasOwn(SCREENS, name)) name = "home";
  document.documentElement.lang = language();
  document.title = t("Village Ledger station");
  document.getElementById("title").textContent = t("Village Ledger station");
  renderLanguages();
  renderMenu(identity, name);
  const main = document.getElementById("screen");
  clear(main);
  const api = identity ? createApi(identity) : null;
  try {
    const loading = SCREENS[name]();
    // in the same round trip as the screen (which would find it only once it arrived):
    // most screens import the queue, and it syncs by itself once loaded
    if (identity) import("./queue.js").catch(() => null);
    const render = await loading;
    await render({ main, identity, api, go, showProblem });
  } catch (error) {
    showProblem(main, error);
  }
  main.dataset.ready = name;
}

function registerWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/station/sw.js", { scope: "/station/" }).catch(() => {
    document.getElementById("status").textContent = t("This app cannot work offline in this browser.");
  });
}

async function start() {
  await Promise.all([loadWords("station", preferredLanguage(CHOSEN), CHOSEN), loadCurrencies()]);
  window.addEventListener("hashchange", show);
  await show();
  registerWorker();
}

start();
