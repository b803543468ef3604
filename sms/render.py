"""Which outbox events become an SMS, to whom, and in which words.

A villager (its phone and language from ``villagers``) gets: every movement of its
wallet (``wallet.receipt``: credit, debit, hold, release, with the balance after it), its
activation code (``villager.activation_code``, a secret: it goes to the phone the event
names, the villager's own, and operators see it masked), a locked PIN, a withdrawal or
pay code made in its name (``consent.code_made``: the code's digits are not in the
event, the villager already has them; the SMS says a code exists, so a code made behind
the villager's back is noticed), the pickup code of an order she collects at a station
(``order.pickup_code``: a secret too, masked for operators), and its order delivered or
refunded. Every SMS about an order (a pay code is made for one)
names it by its reference (:func:`ledger.flows.orders.order_reference`), the one the
USSD menu's ``99 Order reference`` takes, so that she can find the order there. An
agent gets low float and a cash-out requested at its station, at the phone an operator
set for it (``sms_contacts``); an agent without one gets nothing.

Words come from the ``sms`` catalogs (:func:`ledger.i18n.tr`), money from
:func:`ledger.money.format_money`, times in the recipient's zone: the phone's country's
zone when it has one (Kenya: ``Africa/Nairobi``), else
:attr:`~sms.settings.SmsSettings.default_zone`. A PIN is in no event and so in no SMS.
Names are cut to :data:`NAME_SHOWN_MAX` characters and lose their control characters, so
a party's name cannot break or stretch a message.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.core.tx import Tx
from ledger.flows import consent, events, orders, parties, pickup, villagers
from ledger.i18n import tr
from ledger.i18n import zone_of_phone as zone_for
from ledger.money import format_money
from sms import repository
from sms.encoding import split
from sms.repository import NewMessage
from sms.settings import SmsSettings

__all__ = ["CODE_MASK", "NAME_SHOWN_MAX", "Recipient", "render_in", "zone_for"]

NAME_SHOWN_MAX = 30
"""A party's name in an SMS is cut to this many characters."""
CODE_MASK = "*"
"""What stands for each digit of a code in the text operators see."""
TIME_FORMAT = "%d/%m/%Y %H:%M"


@dataclass(frozen=True, slots=True)
class Recipient:
    party_id: uuid.UUID
    phone: str
    language: str
    zone: str


@dataclass(frozen=True, slots=True)
class _Text:
    text: str
    shown: str


def _when(value: datetime | str, zone: str) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    try:
        return moment.astimezone(ZoneInfo(zone)).strftime(TIME_FORMAT)
    except ZoneInfoNotFoundError:
        return moment.strftime(TIME_FORMAT) + " UTC"


def _name(value: object) -> str:
    """A name as shown: control characters out, then cut to :data:`NAME_SHOWN_MAX`."""
    text = "".join(c for c in str(value or "") if unicodedata.category(c)[0] != "C")
    return (text.strip() or "Village Ledger")[:NAME_SHOWN_MAX]


def _money(payload: dict[str, Any], key: str) -> str:
    return format_money(int(payload[key]), str(payload["currency"]))


def _plain(text: str) -> _Text:
    return _Text(text, text)


# -- villagers -------------------------------------------------------------------------


def _receipt(tx: Tx, event: events.Event, to: Recipient) -> _Text | None:
    p, lang = event.payload, to.language
    at = _when(event.created_at, to.zone)
    amount, name = _money(p, "amount_minor"), _name(p.get("counterparty", {}).get("name"))
    balance, available = _money(p, "balance_minor"), _money(p, "available_minor")
    match p.get("movement"):
        case "credit":
            return _plain(
                tr(
                    lang,
                    "sms",
                    "Received {amount} from {name} on {time}. New balance {balance}.",
                    amount=amount,
                    name=name,
                    time=at,
                    balance=balance,
                )
            )
        case "debit":
            return _plain(
                tr(
                    lang,
                    "sms",
                    "Paid {amount} to {name} on {time}. New balance {balance}.",
                    amount=amount,
                    name=name,
                    time=at,
                    balance=balance,
                )
            )
        case "hold":
            return _plain(
                tr(
                    lang,
                    "sms",
                    "{amount} held for {name} on {time}. Available {available}.",
                    amount=amount,
                    name=name,
                    time=at,
                    available=available,
                )
            )
        case "release":
            return _plain(
                tr(
                    lang,
                    "sms",
                    "{amount} released from hold on {time}. Available {available}.",
                    amount=amount,
                    time=at,
                    available=available,
                )
            )
    return None


def _activation_code(tx: Tx, event: events.Event, to: Recipient) -> _Text:
    code = str(event.payload["code"])
    expires = _when(str(event.payload["expires_at"]), to.zone)

    def text(shown_code: str) -> str:
        return tr(
            to.language,
            "sms",
            "Your Village Ledger activation code is {code}. It expires at {time}."
            " Never share it. We never ask for your PIN.",
            code=shown_code,
            time=expires,
        )

    return _Text(text(code), text(CODE_MASK * len(code)))


def _pin_locked(tx: Tx, event: events.Event, to: Recipient) -> _Text:
    return _plain(
        tr(
            to.language,
            "sms",
            "Your PIN is locked after {tries} wrong tries. Visit your agent to unlock it.",
            tries=int(event.payload.get("tries_failed", 0)),
        )
    )


def _code_made(tx: Tx, event: events.Event, to: Recipient) -> _Text | None:
    p, lang = event.payload, to.language
    amount, expires = _money(p, "amount_minor"), _when(str(p["expires_at"]), to.zone)
    match p.get("purpose"):
        case "withdrawal" | "offline_withdrawal":
            return _plain(
                tr(
                    lang,
                    "sms",
                    "A withdrawal code for {amount} was made. It expires at {time}."
                    " Not you? Tell your agent.",
                    amount=amount,
                    time=expires,
                )
            )
        case "payment":
            return _plain(
                tr(
                    lang,
                    "sms",
                    "A pay code for {amount}, order {reference}, was made. It expires at {time}."
                    " Not you? Tell your agent.",
                    amount=amount,
                    reference=_reference(p),
                    time=expires,
                )
            )
    return None


def _reference(payload: dict[str, Any]) -> str:
    """The reference of the order the event names (a pay code always names one)."""
    return orders.order_reference(str(payload["order_id"]))


def _pickup_code(tx: Tx, event: events.Event, to: Recipient) -> _Text:
    """The code she shows at the station to collect an order (operators see it masked)."""
    p, code = event.payload, str(event.payload["code"])
    reference, shop = _reference(p), _name(p.get("storefront_name"))
    until = p.get("valid_until")

    def text(shown_code: str) -> str:
        if until is None:
            return tr(
                to.language,
                "sms",
                "Pickup code for order {reference} from {shop}: {code}."
                " Show it to the agent when you collect. Never share it otherwise.",
                reference=reference,
                shop=shop,
                code=shown_code,
            )
        return tr(
            to.language,
            "sms",
            "Pickup code for order {reference} from {shop}: {code}, until {time}."
            " Show it to the agent when you collect. Never share it otherwise.",
            reference=reference,
            shop=shop,
            code=shown_code,
            time=_when(str(until), to.zone),
        )

    return _Text(text(code), text(CODE_MASK * len(code)))


def _shop(tx: Tx, event: events.Event) -> str:
    found = parties.find_party(tx, uuid.UUID(str(event.payload["storefront_id"])))
    return _name(None if found is None else found.name)


def _order_delivered(tx: Tx, event: events.Event, to: Recipient) -> _Text:
    return _plain(
        tr(
            to.language,
            "sms",
            "Your order {reference} from {shop} was delivered: {amount}.",
            reference=_reference(event.payload),
            shop=_shop(tx, event),
            amount=_money(event.payload, "delivered_minor"),
        )
    )


def _order_refunded(tx: Tx, event: events.Event, to: Recipient) -> _Text:
    return _plain(
        tr(
            to.language,
            "sms",
            "Your order {reference} from {shop} was refunded: {amount} back to your wallet.",
            reference=_reference(event.payload),
            shop=_shop(tx, event),
            amount=_money(event.payload, "refunded_now_minor"),
        )
    )


# -- agents ----------------------------------------------------------------------------


def _float_low(tx: Tx, event: events.Event, to: Recipient) -> _Text:
    return _plain(
        tr(
            to.language,
            "sms",
            "Float low: {available} available, below your alert of {threshold}. Top up soon.",
            available=_money(event.payload, "available_minor"),
            threshold=_money(event.payload, "threshold_minor"),
        )
    )


def _cash_out_requested(tx: Tx, event: events.Event, to: Recipient) -> _Text:
    found = villagers.get_villager_in(tx, uuid.UUID(str(event.payload["villager_id"])))
    return _plain(
        tr(
            to.language,
            "sms",
            "{name} asks to withdraw {amount} at your station. Confirm by {time}.",
            name=_name(None if found is None else found.name),
            amount=_money(event.payload, "amount_minor"),
            time=_when(str(event.payload["expires_at"]), to.zone),
        )
    )


# -- recipients ------------------------------------------------------------------------


def _villager(tx: Tx, villager_id: uuid.UUID, settings: SmsSettings) -> Recipient | None:
    found = villagers.get_villager_in(tx, villager_id)
    if found is None:
        return None
    zone = zone_for(found.phone, settings.default_zone)
    return Recipient(found.id, found.phone, found.language.value, zone)


def _contact(tx: Tx, party_id: uuid.UUID, settings: SmsSettings) -> Recipient | None:
    found = repository.find_contact(tx, party_id)
    if found is None:
        return None
    zone = zone_for(found.phone, settings.default_zone)
    return Recipient(party_id, found.phone, found.language, zone)


def _order_villager(tx: Tx, event: events.Event, settings: SmsSettings) -> Recipient | None:
    order = orders.get_order_in(tx, order_id=uuid.UUID(str(event.payload["order_id"])))
    return None if order.villager_id is None else _villager(tx, order.villager_id, settings)


def _code_phone(tx: Tx, event: events.Event, settings: SmsSettings) -> Recipient | None:
    """The activation code goes to the phone the event names (the villager's own)."""
    if event.party_id is None:
        return None
    phone, language = str(event.payload["phone"]), str(event.payload["language"])
    return Recipient(event.party_id, phone, language, zone_for(phone, settings.default_zone))


def _party_villager(tx: Tx, event: events.Event, settings: SmsSettings) -> Recipient | None:
    return None if event.party_id is None else _villager(tx, event.party_id, settings)


def _party_contact(tx: Tx, event: events.Event, settings: SmsSettings) -> Recipient | None:
    return None if event.party_id is None else _contact(tx, event.party_id, settings)


Find = Callable[[Tx, events.Event, SmsSettings], Recipient | None]
Render = Callable[[Tx, events.Event, Recipient], _Text | None]

RULES: dict[str, tuple[Find, Render]] = {
    events.WALLET_RECEIPT: (_party_villager, _receipt),
    events.VILLAGER_ACTIVATION_CODE: (_code_phone, _activation_code),
    events.VILLAGER_PIN_LOCKED: (_party_villager, _pin_locked),
    consent.CONSENT_CODE_MADE: (_party_villager, _code_made),
    pickup.PICKUP_CODE_EVENT: (_party_villager, _pickup_code),
    events.ORDER_DELIVERED: (_order_villager, _order_delivered),
    events.ORDER_REFUNDED: (_order_villager, _order_refunded),
    events.FLOAT_LOW: (_party_contact, _float_low),
    events.CASHOUT_RESERVED: (_party_contact, _cash_out_requested),
}
"""Event type -> (who gets it, what it says)."""


def _capped(text: str, parts_max: int) -> str:
    parts = split(text).parts
    return text if len(parts) <= parts_max else "".join(parts[:parts_max])


def render_in(tx: Tx, event: events.Event, settings: SmsSettings) -> NewMessage | None:
    """The SMS this event makes, or None (not an SMS event, or nobody to send it to)."""
    rule = RULES.get(event.type)
    if rule is None:
        return None
    find, render = rule
    to = find(tx, event, settings)
    if to is None:
        return None
    made = render(tx, event, to)
    if made is None:
        return None
    text = _capped(made.text, settings.parts_max)
    shown = _capped(made.shown, settings.parts_max)
    found = split(text)
    return NewMessage(
        event_id=event.id,
        event_seq=event.seq,
        event_type=event.type,
        party_id=to.party_id,
        phone=to.phone,
        language=to.language,
        text=text,
        text_shown=shown,
        parts=len(found.parts),
        encoding=found.encoding.value,
    )
