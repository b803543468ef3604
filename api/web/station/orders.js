// Orders at this station: the orders naming this agent (GET /v1/agents/{id}/orders, newest
// first) and one the villager brings by its id (GET /v1/orders/{id}). On each, the step
// its state allows, through the orders flow's step routes: pay in cash (the villager
// hands over the cash; this agent's float pays the shop's escrow), the goods arrived and
// are handed over (deliver, with the villager's pickup code for a station hand-over), and
// the villager accepts them (release: the escrow pays the shop). Each step is one
// operation: a second tap or a retry with the same input is the same step.
// With no network, the hand-over with her pickup code is kept on this phone as a signed
// record (queue.js) and sent when the network is back: the server checks the code then,
// as it does online, and the history shows the order delivered or why not. The orders
// shown offline are the last ones this phone read (the service worker's copy).

import { newIdempotencyKey } from "/web/shared/api.js";
import { el } from "/web/shared/dom.js";
import { t } from "/web/shared/i18n.js";
import { formatMoney } from "/web/shared/money.js";
import { capture } from "./queue.js";

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ID_LENGTH_MAX = 36;
const CODE = /^[0-9]{6}$/;
const PAGE_SIZE = 20;
const AT_STATION = new Set(["pickup_point", "agent_delivery"]);

function stateText(state) {
  const words = {
    created: t("Waiting for payment"), paid: t("Paid: the shop sends the goods"),
    dispatched: t("Sent by the shop: hand over when it arrives"),
    delivered: t("Handed over: waiting for the villager to accept"),
    released: t("Done: the shop is paid"), refunded: t("Refunded to the payer"), cancelled: t("Order cancelled"),
    disputed: t("Disputed: an operator decides"),
  };
  return Object.hasOwn(words, state) ? words[state] : state;
}

function methodText(method) {
  if (method === "pickup_point") return t("Pickup at this station");
  if (method === "agent_delivery") return t("Delivered through this station");
  if (method === "courier") return t("Courier");
  return method;
}

/** The refusal of a step in words (null: show the problem as it is). */
function refusalText(error) {
  if (error.code === "pickup_code_invalid") {
    const left = /\((\d+) tries left\)/.exec(error.detail || "");
    if (left) return t("Wrong pickup code: {count} tries left.", { count: left[1] });
    if (/voided it/.test(error.detail || "")) {
      return t("Wrong pickup code: it is void now. The shop must send her a new one.");
    }
    return t("That is not her pickup code. Ask for the 6 digits she was sent.");
  }
  if (error.code === "pickup_code_required") return t("Type the villager's pickup code.");
  if (error.code === "float_short") return t("Your float is too low to pay this order.");
  if (error.code === "fee_schedule_missing") return t("Orders have no fee schedule yet: ask the back office.");
  if (error.code === "order_not_found") return t("No order with that id for this station.");
  if (error.code === "validation_failed") return t("That is not a pickup code: it has 6 digits.");
  return null;
}

/** One operation id per (step, input): the same step asked again reuses it. */
function operations() {
  let last = { what: null, key: null };
  return (step, body) => {
    const what = JSON.stringify([step, body]);
    if (last.what !== what) last = { what, key: newIdempotencyKey() };
    return last.key;
  };
}

function actionsOf(order, mine, act) {
  const box = el("div", { class: "actions" });
  if (order.state === "created" && (order.agent_id === null || order.agent_id === mine)) {
    const pay = el("button", { type: "button", class: "pay-cash" },
      t("She paid {amount} in cash: pay the order", { amount: formatMoney(order.amount_minor, order.currency) }));
    pay.addEventListener("click", () => act(pay, "pay", { source: "cash" }));
    box.append(pay);
  } else if (order.state === "dispatched" && AT_STATION.has(order.delivery_method)) {
    const code = el("input", { class: "pickup-code", name: "pickup_code", inputmode: "numeric",
      autocomplete: "off", maxlength: 6, "aria-label": t("Her pickup code") });
    const hand = el("button", { type: "button", class: "hand-over" }, t("Goods arrived: hand over"));
    hand.addEventListener("click", () => act(hand, "deliver", { pickup_code: code.value.trim() }));
    box.append(el("label", {}, t("Her pickup code"), code), hand);
  } else if (order.state === "dispatched") {
    const arrived = el("button", { type: "button", class: "hand-over" }, t("Goods arrived: hand over"));
    arrived.addEventListener("click", () => act(arrived, "deliver", {}));
    box.append(arrived);
  } else if (order.state === "delivered") {
    const release = el("button", { type: "button", class: "release" },
      t("She accepts the goods: pay the shop"));
    release.addEventListener("click", () => act(release, "release", {}));
    box.append(release);
  }
  return box;
}

/** [label, value, class] rows (an order may be shown twice: classes, not ids). */
function rows(pairs) {
  return el("dl", { class: "figures" }, pairs.map(([label, value, name]) =>
    el("div", {}, el("dt", {}, label), el("dd", { class: name }, value))));
}

/** No network: keep the hand-over with her code on this phone (one tap: the button stays
 * disabled once it is kept). */
async function keepHandover(context, order, code, button, outcome) {
  button.disabled = true;
  outcome.replaceChildren();
  try {
    await capture(context.identity, { kind: "handover", orderId: order.id, pickupCode: code,
      villagerId: order.villager_id, villagerName: null, amountMinor: order.amount_minor,
      currency: order.currency, consentCode: null });
    outcome.append(el("p", { class: "ok", role: "status", "data-kept": order.id },
      t("Kept on this phone: hand-over of order {id}. It will be sent when the network is back.",
        { id: order.id.slice(0, 8) })));
  } catch (error) {
    button.disabled = false;
    context.showProblem(outcome, error);
  }
}

function orderCard(context, order) {
  const { api, identity, showProblem } = context;
  const card = el("section", { class: "card order", "data-order": order.id,
    "data-state": order.state });
  const money = (minor) => formatMoney(minor, order.currency);
  const outcome = el("div", { class: "order-outcome" });
  const operation = operations();
  const act = async (button, step, body) => {
    if (step === "deliver" && "pickup_code" in body && !CODE.test(body.pickup_code)) {
      outcome.replaceChildren(el("p", { class: "error", role: "alert" },
        t("That is not a pickup code: it has 6 digits.")));
      return;
    }
    if (step === "deliver" && "pickup_code" in body && !navigator.onLine) {
      return keepHandover(context, order, body.pickup_code, button, outcome);
    }
    button.disabled = true;
    outcome.replaceChildren();
    try {
      const key = operation(step, body);
      const next = await api.post(`/v1/orders/${order.id}/${step}`, body, { idempotencyKey: key });
      card.replaceWith(orderCard(context, next));
    } catch (error) {
      button.disabled = false;
      const text = refusalText(error);
      if (text) outcome.append(el("p", { class: "error", role: "alert" }, text));
      else showProblem(outcome, error);
    }
  };
  card.append(el("h3", {}, t("Order {id}", { id: order.id.slice(0, 8) })),
    rows([
      [t("Order amount"), money(order.amount_minor), "amount"],
      [t("Order state"), stateText(order.state), "state"],
      [t("In escrow"), money(order.escrow_minor), "escrow"],
      [t("Paid to the shop"), money(order.released_minor), "released"],
      [t("Delivery method"), methodText(order.delivery_method), "method"],
    ]),
    actionsOf(order, identity.principalId, act), outcome);
  return card;
}

function findForm(context, box) {
  const input = el("input", { id: "order-id", name: "order", autocomplete: "off",
    spellcheck: "false", maxlength: ID_LENGTH_MAX, required: true });
  const form = el("form", { id: "order-form" },
    el("label", { for: "order-id" }, t("Order id (the villager has it)")), input,
    el("button", { type: "submit", id: "find-order" }, t("Find the order")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.replaceChildren();
    const id = input.value.trim();
    if (!ID.test(id)) {
      box.append(el("p", { class: "error", role: "alert" }, t("That is not an order id.")));
      return;
    }
    try {
      box.append(orderCard(context, await context.api.get(`/v1/orders/${id}`)));
    } catch (error) {
      const text = refusalText(error);
      if (text) box.append(el("p", { class: "error", role: "alert" }, text));
      else context.showProblem(box, error);
    }
  });
  return form;
}

export async function renderOrders(context) {
  const { main, api, identity } = context;
  const found = el("div", { id: "order-found" });
  main.append(el("h2", {}, t("Orders")), findForm(context, found), found);
  const listed = await api.get(`/v1/agents/${identity.principalId}/orders?limit=${PAGE_SIZE}`);
  const list = el("div", { id: "station-orders" });
  for (const order of listed.data) list.append(orderCard(context, order));
  main.append(el("h3", {}, t("Orders at this station")), list);
  if (listed.data.length === 0) {
    list.append(el("p", { class: "muted", id: "no-orders" }, t("No orders at this station yet.")));
  }
  if (listed.has_more) {
    main.append(el("p", { class: "muted" }, t("Showing the newest {count}.", { count: PAGE_SIZE })));
  }
}
