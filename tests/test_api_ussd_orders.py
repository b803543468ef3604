"""Otieno's orders over the USSD callback (real HTTP, both engines): a pay code for his
unpaid order pays it once; "confirm delivered" on a dispatched order releases its escrow
to the seller through the orders flow (and is refused, nothing moved, while the order is
only paid); a dispute opens and keeps the money held; another villager's orders are never
listed; replayed steps answer the same screen and move nothing twice. An order older
than the list is reached by its typed reference (any case, spaces ignored) and gets its
pay code; another villager's reference answers like an unknown one; two of his orders
sharing a reference are listed to choose from; bad input on the reference screen gets a
clear screen, a PIN typed there is neither kept nor echoed, and nothing moves."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest

from ledger.flows import consent, events, fees, orders, parties, villagers
from ledger.flows.errors import Refused
from ledger.flows.orders import Source, State, order_reference
from ledger.flows.parties import Kind, Party, Role
from ledger.flows.ussd import repository as sessions
from ledger.flows.ussd.model import BLANK, blanked, inputs_sha256
from ledger.flows.ussd.my_orders import ORDERS_SHOWN_MAX
from tests.test_api_ussd import Aggregator, aggregator
from tests.test_api_ussd_withdraw import MAIN, Walk
from tests.ussd_helpers import PIN, agent, villager, wallet_minor

__all__ = ["aggregator"]  # the fixture, imported for pytest

ORDER_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "bps": 200}],
    "split_bps": {"tax": 1_600, "agent_commission": 2_500},
}
_PUBLISHED: set[int] = set()


class Village:
    def __init__(self, agg: Aggregator) -> None:
        self.agg, self.led = agg, agg.led
        if id(agg.led) not in _PUBLISHED:
            fees.publish_schedule(
                agg.led,
                product="order",
                currency="KES",
                effective_from=agg.clock.now - timedelta(days=1),
                rules=ORDER_RULES,
            )
            _PUBLISHED.add(id(agg.led))
        self.wanjiru = agent(self.led)
        self.otieno = villager(self.led, self.wanjiru.id, (150_000,))
        self.phone = villagers.get_villager(self.led, self.otieno.id).phone
        self.shop = parties.onboard(
            self.led, party_id=uuid.uuid4(), kind=Kind.STOREFRONT, name="Mbegu", currency="KES"
        )

    def order(
        self,
        amount_minor: int = 50_000,
        *,
        of: Party | None = None,
        order_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        self.agg.clock.advance(1)  # the list is newest first
        order_id = order_id or uuid.uuid4()
        orders.create_order(
            self.led,
            order_id=order_id,
            storefront_id=self.shop.id,
            currency="KES",
            amount_minor=amount_minor,
            delivery_method="courier",
            villager_id=(of or self.otieno).id,
            agent_id=self.wanjiru.id,
        )
        return order_id

    def paid(self, *, dispatched: bool) -> uuid.UUID:
        order_id = self.order()
        orders.pay_order_by_pin(
            self.led, step_id=uuid.uuid4(), order_id=order_id, villager_id=self.otieno.id, pin=PIN
        )
        if dispatched:
            orders.dispatch_order(self.led, step_id=uuid.uuid4(), order_id=order_id)
        return order_id

    def state(self, order_id: uuid.UUID) -> State:
        return orders.get_order(self.led, order_id=order_id).state

    def shop_minor(self, role: str) -> int:
        (account,) = self.led.lookup_accounts([self.shop.account(role)])
        return account.credits_posted - account.debits_posted

    def walk_to_orders(self) -> Walk:
        walk = Walk(self.agg, self.phone)
        assert walk.press("6") == "CON Enter your PIN"
        walk.press(PIN)
        return walk

    def codes_made(self) -> int:
        found = self.led.transact(
            lambda tx: events.read_events(tx, party_id=self.otieno.id, limit=events.EVENTS_PAGE_MAX)
        )
        return sum(1 for e in found if e.type == consent.CONSENT_CODE_MADE)


@pytest.fixture
def village(aggregator: Aggregator) -> Village:
    return Village(aggregator)


def test_a_pay_code_from_the_menu_pays_the_order_once(village: Village) -> None:
    order_id = village.order()
    ref = order_reference(order_id)
    walk = village.walk_to_orders()
    assert walk.send() == f"CON My orders\n99 Order reference\n1 {ref} KES 500.00 unpaid\n0 Back"
    assert walk.press("1") == (f"CON Order {ref}: KES 500.00, unpaid\n1 Get a pay code\n0 Back")
    made = walk.press("1")
    found = re.fullmatch(
        rf"END Pay code: (\d{{6}})\nFor KES 500\.00, order {ref}\. Valid 10 minutes\."
        r" Give it only to the shop\.",
        made,
    )
    assert found is not None, made
    assert walk.send() == made  # replayed: the same screen, no second code
    assert village.codes_made() == 1
    paid = orders.pay_order(
        village.led,
        step_id=uuid.uuid4(),
        order_id=order_id,
        source=Source.WALLET,
        consent_code=found.group(1),
        caller_id=village.shop.id,
    )
    assert paid.state is State.PAID
    assert wallet_minor(village.led, village.otieno) == (100_000, 100_000)
    with pytest.raises(Refused):
        orders.pay_order(
            village.led,
            step_id=uuid.uuid4(),
            order_id=order_id,
            source=Source.WALLET,
            consent_code=found.group(1),
            caller_id=village.shop.id,
        )
    assert wallet_minor(village.led, village.otieno) == (100_000, 100_000)
    assert village.shop_minor(Role.ESCROW) == 50_000


def test_confirm_delivered_releases_the_escrow_once_and_only_when_dispatched(
    village: Village,
) -> None:
    only_paid = village.paid(dispatched=False)
    sent = village.paid(dispatched=True)  # newest first: 1 is `sent`
    walk = village.walk_to_orders()
    assert walk.send() == (
        f"CON My orders\n99 Order reference\n1 {order_reference(sent)} KES 500.00 on its way"
        f"\n2 {order_reference(only_paid)} KES 500.00 paid\n0 Back"
    )
    assert walk.press("2") == (
        f"CON Order {order_reference(only_paid)}: KES 500.00, paid\n3 Open a dispute\n0 Back"
    )
    assert walk.press("2") == (  # not offered, and the flow would refuse it
        f"CON That cannot be done for this order now.\nOrder {order_reference(only_paid)}:"
        " KES 500.00, paid\n3 Open a dispute\n0 Back"
    )
    assert village.state(only_paid) is State.PAID
    assert walk.press("0").startswith("CON My orders\n99 Order reference\n1 ")
    assert walk.press("1") == (
        f"CON Order {order_reference(sent)}: KES 500.00, on its way\n2 Confirm delivered"
        "\n3 Open a dispute\n0 Back"
    )
    done = walk.press("2")
    assert done == (
        f"END Order {order_reference(sent)} confirmed delivered. KES 500.00 is paid to the seller."
    )
    assert walk.send() == done
    assert village.state(sent) is State.RELEASED
    assert village.shop_minor(Role.ESCROW) == 50_000  # only `only_paid` is still held
    proceeds = village.shop_minor(Role.PROCEEDS)
    assert 0 < proceeds < 50_000  # the seller's share, the fee taken out
    walk.send()
    assert village.shop_minor(Role.PROCEEDS) == proceeds


def test_a_dispute_opens_and_keeps_the_money_held(village: Village) -> None:
    order_id = village.paid(dispatched=True)
    walk = village.walk_to_orders()
    walk.press("1")
    assert walk.press("3") == (
        "CON Why do you dispute it?\n1 Not arrived\n2 Damaged\n3 Wrong goods\n0 Back"
    )
    assert walk.press("9").startswith("CON That is not a choice here.\nWhy do you dispute")
    done = walk.press("2")
    assert done == (
        f"END Your dispute of order {order_reference(order_id)} is open. The money stays held"
        " until it is settled."
    )
    assert walk.send() == done
    assert village.state(order_id) is State.DISPUTED
    assert village.shop_minor(Role.ESCROW) == 50_000
    assert village.shop_minor(Role.PROCEEDS) == 0


def test_another_villager_s_orders_are_never_listed(village: Village) -> None:
    baraka = villager(village.led, village.wanjiru.id, (10_000,))
    theirs = village.order(of=baraka)
    walk = village.walk_to_orders()
    assert walk.send() == "CON My orders\nYou have no orders yet.\n0 Back"
    assert walk.press("1") == (  # no choice
        "CON That is not a choice here.\nMy orders\nYou have no orders yet.\n0 Back"
    )
    assert walk.press("99").startswith("CON That is not a choice here.")  # none to find
    assert walk.press("0") == MAIN
    assert village.state(theirs) is State.CREATED
    assert village.codes_made() == 0


PROMPT = "Enter the order reference (6 characters, like 3FA2C9)\n0 Back"
NO_SUCH = "CON You have no order with that reference.\n" + PROMPT
FORMAT = "CON A reference is 6 characters: digits 0-9 and letters A-F.\n" + PROMPT
DIGITS_ONLY = "END Only the number keys work here. Please dial again."
TOO_MANY = "END Too many keys in one session. Please dial again."


def lettered() -> uuid.UUID:
    """An order id whose reference holds a letter (a PIN never does)."""
    return uuid.UUID("f" + uuid.uuid4().hex[1:])


def listed_pages(walk: Walk) -> list[str]:
    """Every page of the list, turned with 98 (the walk stays on the last)."""
    found = [walk.send()]
    while "\n98 More\n" in found[-1]:
        found.append(walk.press("98"))
    return found


def session_row(village: Village, walk: Walk) -> sessions.SessionRow:
    row = village.led.transact(lambda tx: sessions.select(tx, walk.sid))
    assert row is not None
    return row


def test_an_order_older_than_the_list_is_reached_by_its_reference_and_paid(
    village: Village,
) -> None:
    old = village.order(order_id=lettered())
    newer = [village.order() for _ in range(ORDERS_SHOWN_MAX)]
    ref = order_reference(old)
    walk = village.walk_to_orders()
    shown = "\n".join(listed_pages(walk))
    assert ref not in shown and all(order_reference(o) in shown for o in newer)
    assert walk.press("99") == "CON " + PROMPT  # from the list's last page
    order_screen = f"CON Order {ref}: KES 500.00, unpaid\n1 Get a pay code\n0 Back"
    assert walk.press(f"{ref[:3].lower()} {ref[3:].lower()}") == order_screen
    assert walk.send() == order_screen  # replayed
    row = session_row(village, walk)
    assert len(walk.inputs) - 1 not in row.secret_positions  # a reference is kept
    assert row.inputs_sha256 == inputs_sha256(blanked(walk.inputs, row.secret_positions))
    assert walk.press("0").startswith("CON My orders\n99 Order reference\n1 ")
    walk.press("99")
    assert walk.press(ref) == order_screen  # upper case too
    made = walk.press("1")
    found = re.fullmatch(
        rf"END Pay code: (\d{{6}})\nFor KES 500\.00, order {ref}\. Valid 10 minutes\."
        r" Give it only to the shop\.",
        made,
    )
    assert found is not None, made
    assert walk.send() == made  # replayed: no second code
    assert village.codes_made() == 1
    paid = orders.pay_order(
        village.led,
        step_id=uuid.uuid4(),
        order_id=old,
        source=Source.WALLET,
        consent_code=found.group(1),
        caller_id=village.shop.id,
    )
    assert paid.state is State.PAID
    assert wallet_minor(village.led, village.otieno) == (100_000, 100_000)
    assert all(village.state(o) is State.CREATED for o in newer)


def test_another_villager_s_reference_answers_like_an_unknown_one(village: Village) -> None:
    baraka = villager(village.led, village.wanjiru.id, (10_000,))
    theirs = village.order(of=baraka, order_id=lettered())
    mine = village.order()
    unknown = next(
        r for r in ("ABCDEF", "FEDCBA") if r not in (order_reference(mine), order_reference(theirs))
    )
    walk = village.walk_to_orders()
    walk.send()
    walk.press("99")
    assert walk.press(order_reference(theirs)) == NO_SUCH
    assert walk.press(order_reference(theirs).lower()) == NO_SUCH
    assert walk.press(unknown) == NO_SUCH
    assert walk.press("1") == FORMAT  # no order of his is chosen by its list number here
    assert walk.press("0") == f"CON My orders\n99 Order reference\n1 {order_reference(mine)}" + (
        " KES 500.00 unpaid\n0 Back"
    )
    assert village.state(theirs) is State.CREATED
    assert village.codes_made() == 0
    assert wallet_minor(village.led, baraka) == (10_000, 10_000)


def test_two_of_his_orders_sharing_a_reference_are_listed_to_choose_from(
    village: Village,
) -> None:
    prefix = "c" + uuid.uuid4().hex[1:6]
    first = village.order(50_000, order_id=uuid.UUID(prefix + uuid.uuid4().hex[6:]))
    second = village.order(70_000, order_id=uuid.UUID(prefix + uuid.uuid4().hex[6:]))
    ref = order_reference(first)
    assert order_reference(second) == ref
    walk = village.walk_to_orders()
    walk.send()
    walk.press("99")
    assert walk.press(ref.lower()) == (
        "CON More than one of your orders has that reference. Choose one.\nMy orders"
        f"\n99 Order reference\n1 {ref} KES 700.00 unpaid\n2 {ref} KES 500.00 unpaid\n0 Back"
    )
    assert walk.press("2") == f"CON Order {ref}: KES 500.00, unpaid\n1 Get a pay code\n0 Back"
    made = walk.press("1")
    assert made.startswith("END Pay code: ") and "For KES 500.00" in made
    assert village.codes_made() == 1


def test_bad_input_on_the_reference_screen_is_refused_and_a_pin_is_not_kept(
    village: Village,
) -> None:
    mine = village.order(order_id=lettered())
    walk = village.walk_to_orders()
    walk.send()
    walk.inputs.append("abc")  # letters where only the number keys are read
    assert walk.send() == DIGITS_ONLY
    walk.inputs.pop()
    assert walk.press("99") == "CON " + PROMPT
    pins_at = []
    for bad in ("zzzzzz", "3fa2c", "3fa2c93fa2c9", "4821", "48213", "", "1"):
        assert walk.press(bad) == FORMAT, bad
        if bad.isdigit() and len(bad) > 2:
            pins_at.append(len(walk.inputs) - 1)
    assert walk.press(PIN) == NO_SUCH  # six digits: a reference to look up, not echoed
    pins_at.append(len(walk.inputs) - 1)
    for refused, answer in (
        ("3fa2c93fa2c93", TOO_MANY),  # longer than any input
        ("<script>", DIGITS_ONLY),
        ("3fa2c\u0669", DIGITS_ONLY),
    ):
        walk.inputs.append(refused)
        assert walk.send() == answer
        walk.inputs.pop()
    walk.inputs.append("*".join(["a"] * 1000))
    assert walk.send() == TOO_MANY
    walk.inputs.pop()
    row = session_row(village, walk)
    assert row.inputs_seen == len(walk.inputs)  # the refused ones changed nothing
    assert set(pins_at) <= set(row.secret_positions)
    assert row.inputs_sha256 == inputs_sha256(blanked(walk.inputs, row.secret_positions))
    stored = f"{row.state} {row.screen_text}"
    assert PIN not in stored and "4821" not in stored and "48213" not in stored
    assert blanked(walk.inputs, row.secret_positions)[pins_at[-1]] == BLANK
    assert walk.press(order_reference(mine)).startswith(f"CON Order {order_reference(mine)}: ")
    assert village.state(mine) is State.CREATED
    assert village.codes_made() == 0
    assert wallet_minor(village.led, village.otieno) == (150_000, 150_000)
