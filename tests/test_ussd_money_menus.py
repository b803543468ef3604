"""The money menus' choices (pure): withdraw cash and my orders ask the PIN first; a
till number or an amount is kept out of the session's digest; the amount is whole units,
1-9 digits; an order is chosen only among the ones listed; 0 goes back."""

from __future__ import annotations

from ledger.flows.ussd.menus import (
    Action,
    FindTill,
    MakeWithdrawalCode,
    Note,
    OrderAction,
    Show,
    choose,
    is_secret,
)
from ledger.flows.ussd.model import Menu, State

AGENT = "0b6f1c2e-3d4a-4b5c-8d9e-0f1a2b3c4d5e"
ORDERS = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222")


def test_withdraw_and_orders_ask_the_pin_first() -> None:
    main = State()
    assert choose(main, "5", position=0, pin_verified=False) == Show(
        State(Menu.PIN, after=Menu.WITHDRAW_TILL)
    )
    assert choose(main, "6", position=0, pin_verified=False) == Show(
        State(Menu.PIN, after=Menu.ORDERS)
    )
    assert choose(main, "5", position=3, pin_verified=True) == Show(State(Menu.WITHDRAW_TILL))
    assert choose(main, "6", position=3, pin_verified=True) == Show(State(Menu.ORDERS))


def test_the_withdrawal_screens() -> None:
    till = State(Menu.WITHDRAW_TILL, pin_at=1)
    assert choose(till, "123456", position=2, pin_verified=True) == FindTill("123456")
    assert is_secret(till, "123456")  # blanked in the digest like a PIN: never stored
    assert choose(till, "0", position=2, pin_verified=True) == Show(State(Menu.MAIN))
    amount = State(Menu.WITHDRAW_AMOUNT, agent_id=AGENT)
    assert choose(amount, "2000", position=3, pin_verified=True) == Show(
        State(Menu.WITHDRAW_CONFIRM, agent_id=AGENT, amount_major=2000)
    )
    assert choose(amount, "0", position=3, pin_verified=True) == Show(State(Menu.MAIN))
    for bad in ("", "00", "000", "1234567890"):
        assert choose(amount, bad, position=3, pin_verified=True) == Show(
            amount, Note.AMOUNT_INVALID
        )
    confirm = State(Menu.WITHDRAW_CONFIRM, agent_id=AGENT, amount_major=2000)
    assert choose(confirm, "1", position=4, pin_verified=True) == MakeWithdrawalCode(AGENT, 2000)
    assert choose(confirm, "2", position=4, pin_verified=True) == Show(confirm, Note.INVALID)
    lost = State(Menu.WITHDRAW_CONFIRM, amount_major=2000)  # no agent: never made
    assert choose(lost, "1", position=4, pin_verified=True) == Show(
        State(Menu.WITHDRAW_TILL), Note.INVALID
    )


def test_an_order_is_chosen_only_among_those_listed() -> None:
    listed = State(Menu.ORDERS, order_ids=ORDERS)
    assert choose(listed, "2", position=2, pin_verified=True) == Show(
        State(Menu.ORDER, order_id=ORDERS[1], order_ids=ORDERS)
    )
    for bad in ("3", "9", "00"):
        assert choose(listed, bad, position=2, pin_verified=True) == Show(listed, Note.INVALID)
    assert choose(listed, "0", position=2, pin_verified=True) == Show(State(Menu.MAIN))
    one = State(Menu.ORDER, order_id=ORDERS[0], order_ids=ORDERS)
    assert choose(one, "1", position=3, pin_verified=True) == OrderAction(
        Action.PAY_CODE, ORDERS[0]
    )
    assert choose(one, "2", position=3, pin_verified=True) == OrderAction(Action.CONFIRM, ORDERS[0])
    reason = State(Menu.DISPUTE_REASON, order_id=ORDERS[0], order_ids=ORDERS)
    assert choose(one, "3", position=3, pin_verified=True) == Show(reason)
    assert choose(reason, "3", position=4, pin_verified=True) == OrderAction(
        Action.DISPUTE, ORDERS[0], "wrong_goods"
    )
    assert choose(reason, "0", position=4, pin_verified=True) == Show(one)
    assert choose(one, "0", position=4, pin_verified=True) == Show(
        State(Menu.ORDERS, order_ids=ORDERS)
    )


def test_the_state_keeps_where_not_what() -> None:
    state = State(Menu.ORDER, pin_at=2, order_id=ORDERS[0], order_ids=ORDERS)
    assert State.from_json(state.to_json()) == state
    kept = State(Menu.WITHDRAW_CONFIRM, agent_id=AGENT, amount_major=5, pin_at=1)
    assert State.from_json(kept.to_json()) == kept
    assert "739146" not in str(kept.to_json())
