"""The USSD service: :func:`answer` takes one aggregator step and returns its screen.

What it guarantees (the package docstring, :mod:`ledger.flows.ussd`, has the menu):

- **No PIN is kept.** ``text`` repeats every input, PINs included; the session row keeps
  the positions of the PIN inputs, a digest of the inputs with those positions blanked,
  and when the PIN was verified. Nothing logged names an input.
- **Replays answer the same.** The same ``sessionId`` and ``text`` again answers the
  stored screen and runs nothing (no second PIN try, no second PIN change). One
  transaction reads the session row (locked on PostgreSQL) and judges the step: a step
  that only reads (a menu, a prompt, the balance, the statement) is answered and saved
  there, by compare-and-set on ``inputs_seen``; a step that writes through a flow (a PIN
  check, a PIN change, the language) is *claimed* there (its screen stored empty), run,
  then answered and saved. Another delivery of a claimed step waits (at most
  :data:`PENDING_WAIT_S`) for its screen; a step whose flow fails is given back, so that
  a retry runs it. A pending villager's activation (code, new PIN, again) is one such
  claimed step: a replay neither counts a wrong code twice nor activates twice.
- **Bounded.** ``text`` over the limits (:mod:`ledger.flows.ussd.model`), an input
  that is no phone's keys, letters where a screen reads the number keys only (all but
  the order reference's: :func:`~ledger.flows.ussd.menus.keys_fit`), an unknown
  ``sessionId`` after the first step, a session idle longer than
  :data:`~ledger.flows.ussd.model.SESSION_IDLE_S`: ``END`` with a clear message, nothing
  written.
- **Money moves only through the flows.** Balance and statement read the wallet; a
  withdrawal or pay code is made by :func:`ledger.flows.consent.make_code_in_session` on
  the PIN the session verified once (no second argon2 verify; refused if her PIN is
  locked since), as a claimed step: a replay answers the stored screen and makes no
  second code.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from functools import lru_cache
from zoneinfo import ZoneInfo

from ledger.core.errors import InvariantViolation, StorageError
from ledger.core.ledger import Ledger
from ledger.core.store import to_us
from ledger.core.tx import Tx
from ledger.flows import consent, events, villagers
from ledger.flows.errors import Refused
from ledger.flows.ussd import my_orders, repository, withdraw, written
from ledger.flows.ussd.menus import (
    PIN_FIRST,
    REFERENCE_DIGITS,
    WITHDRAW_MENUS,
    Activate,
    ChangePin,
    FindOrder,
    FindTill,
    MakeWithdrawalCode,
    Note,
    OrderAction,
    SetLanguage,
    Show,
    Step,
    VerifyPin,
    choose,
    is_secret,
    keys_fit,
)
from ledger.flows.ussd.model import (
    SESSION_ID_LENGTH_MAX,
    SESSION_IDLE_S,
    STATEMENT_MOVEMENTS,
    Menu,
    Screen,
    State,
    blanked,
    inputs_sha256,
    parse_text,
)
from ledger.flows.ussd.repository import SessionRow
from ledger.flows.ussd.screens import (
    Line,
    ask,
    ended,
    language_menu,
    main_menu,
    paged,
    statement_line,
)
from ledger.flows.villagers import ACTIVATION_CODE_DIGITS as CODE_DIGITS
from ledger.flows.villagers import State as VillagerState
from ledger.flows.villagers import Villager
from ledger.i18n import DEFAULT_LANGUAGE, tr, zone_of_phone
from ledger.limits import US_PER_S
from ledger.money import format_money

__all__ = [
    "PURGE_AFTER_S",
    "PURGE_BATCH_MAX",
    "answer",
    "purge_sessions",
    "refused_screen",
    "too_many_keys",
]

log = logging.getLogger("vledger.ussd")

PURGE_AFTER_S = 86_400
"""Sessions idle this long are deleted by :func:`purge_sessions` (long past expiry: a
replayed step of a day-old session answers "dial again" either way)."""
PURGE_BATCH_MAX = 1_000
"""The most sessions one :func:`purge_sessions` call deletes."""
PENDING = ""
"""The stored screen of a step being worked on (claimed, not answered yet)."""
FORGOTTEN = "-"
"""The stored screen of an ended session once it can no longer be replayed."""
PENDING_WAIT_S = 5.0
"""How long a second delivery of a step waits for the first one's screen."""
PENDING_POLL_S = 0.05
PHONES_KEPT_MAX = 4_096
"""The most aggregator phone numbers whose E.164 form is kept (parsing one costs more
than the rest of a menu step's Python)."""

_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A step's result: the screen and what the session keeps."""

    screen: Screen
    state: State
    language: str
    pin_verified_at_us: int | None


def refused_screen(language: str = DEFAULT_LANGUAGE) -> Screen:
    """The one answer to a caller that is not a trusted aggregator (tells nothing)."""
    return ended(tr(language, "ussd", "The service cannot answer now. Please try again later."))


def too_many_keys(language: str = DEFAULT_LANGUAGE) -> Screen:
    """The answer to a ``text`` (or a callback body) over the limits."""
    return ended(tr(language, "ussd", "Too many keys in one session. Please dial again."))


def _text_refused(language: str, code: str) -> Screen:
    if code == "ussd_input_not_keys":
        return _number_keys_only(language)
    return too_many_keys(language)


def _number_keys_only(language: str) -> Screen:
    return ended(tr(language, "ussd", "Only the number keys work here. Please dial again."))


def _dial_again(language: str) -> Screen:
    return ended(tr(language, "ussd", "This session is over. Please dial again."))


def _expired(language: str) -> Screen:
    return ended(tr(language, "ussd", "Your session timed out. Please dial again."))


def _locked(language: str) -> Screen:
    return ended(tr(language, "ussd", "Your PIN is locked. Visit your agent to unlock it."))


def answer(led: Ledger, *, session_id: str, phone: str, text: str) -> Screen:
    """The screen for one step of session ``session_id`` dialled from ``phone`` (the
    aggregator's ``phoneNumber``, vouched for by the network) with ``text`` (every input
    so far joined by ``*``). Times are the ledger's clock."""
    caller = _caller(session_id, phone)
    if isinstance(caller, Screen):
        return caller
    # Concurrent steps share one commit (a menu step is one short transaction).
    found = led.transact_grouped(lambda tx: _step_in(tx, led.url, session_id, caller, text))
    return _then(led, session_id, found)


async def answer_async(led: Ledger, *, session_id: str, phone: str, text: str) -> Screen:
    """:func:`answer` for an event loop. A menu step whose screen reads nothing, on the
    row this process wrote last, is one statement awaited on the loop itself
    (:func:`_quick_on_loop`). Otherwise the step's first transaction (all of a first
    step and of a menu step that reads) runs on the ledger's writer threads while the
    loop serves others (:meth:`~ledger.core.ledger.Ledger.transact_grouped_async`); what
    some steps do after it (a PIN's argon2id, a flow's writes, waiting for another
    delivery's screen) runs on a worker thread, never on the loop."""
    caller = _caller(session_id, phone)
    if isinstance(caller, Screen):
        return caller
    quick = await _quick_on_loop(led, session_id, caller, text)
    if quick is not None:
        return quick
    found = await led.transact_grouped_async(
        lambda tx: _step_in(tx, led.url, session_id, caller, text)
    )
    if isinstance(found, Screen):
        return found
    return await asyncio.to_thread(_then, led, session_id, found)


def _caller(session_id: str, phone: str) -> str | Screen:
    """The caller's phone in E.164, or the screen that refuses the step."""
    if not (0 < len(session_id) <= SESSION_ID_LENGTH_MAX and _SESSION_ID.match(session_id)):
        log.warning("ussd: a sessionId that is not one")
        return refused_screen()
    try:
        return _e164(phone)
    except Refused:
        log.info("ussd: a phone number that is not one", extra={"ussd_session": session_id})
        return _not_registered(DEFAULT_LANGUAGE)


def _then(led: Ledger, session_id: str, found: Screen | _Wait | _Effect) -> Screen:
    """What the step's first transaction left to do, to its screen."""
    if isinstance(found, Screen):
        return found
    if isinstance(found, _Wait):
        return _stored(led, session_id, found.inputs_seen)
    return _effect(led, found)


@lru_cache(maxsize=PHONES_KEPT_MAX)
def _e164(phone: str) -> str:
    """:func:`villagers.normalise_phone`, remembered (a refusal is not)."""
    return villagers.normalise_phone(phone)


@dataclass(frozen=True, slots=True)
class _Wait:
    """Another delivery of this step is at work: wait for its screen."""

    inputs_seen: int


@dataclass(frozen=True, slots=True)
class _Quick:
    """A plain next step judged on the row this process wrote last."""

    claimed: SessionRow
    step: Show


@dataclass(frozen=True, slots=True)
class _Effect:
    """A step claimed for this delivery that writes through a flow."""

    row: SessionRow
    """The session before the step."""
    claimed: SessionRow
    step: Step
    inputs: list[str]


def _step_in(
    tx: Tx, database: str, session_id: str, e164: str, text: str
) -> Screen | _Wait | _Effect:
    """In one transaction: read the session, judge the step; a session's first step and
    a step that only reads are answered and saved here, a step that writes through a
    flow is claimed. A step that only reads on the row this process wrote last is saved
    without the read, if that row is still the stored one
    (:mod:`~ledger.flows.ussd.written`)."""
    guessed = written.guess(database, session_id)
    if guessed is not None:
        quick = _quick_in(tx, database, guessed, e164, text)
        if quick is not None:
            return quick
        written.forget(database, session_id)
    row = repository.select(tx, session_id, lock=True)
    language = DEFAULT_LANGUAGE if row is None else row.language
    try:
        inputs = parse_text(text)
    except Refused as refusal:
        log.info("ussd: text refused", extra={"ussd_session": session_id, "code": refusal.code})
        return _text_refused(language, refusal.code)
    if row is None:
        if inputs:  # a step of a session this service never started (or forgot)
            log.info("ussd: unknown session", extra={"ussd_session": session_id})
            return _dial_again(language)
        return _start_in(tx, database, session_id, e164)
    judged = _judge(tx, row, e164, inputs)
    if not isinstance(judged, _Effect):
        return judged
    if isinstance(judged.step, Show):  # it only reads: answer it now
        outcome = _show(tx, row, judged.step.state, judged.step.note)
        return _save_in(tx, database, judged.claimed, outcome, before=row.inputs_seen)
    if repository.update(tx, judged.claimed, inputs_seen_before=row.inputs_seen) is None:
        return _Wait(row.inputs_seen + 1)  # another delivery of it won
    return judged


def _judge(tx: Tx, row: SessionRow, e164: str, inputs: list[str]) -> Screen | _Wait | _Effect:
    """What ``inputs`` are for ``row``: a refusal, a replay (wait for the stored screen)
    or the next step (claimed row ready, nothing written)."""
    language, seen = row.language, row.inputs_seen
    extra = {"ussd_session": row.session_id, "inputs": len(inputs)}
    if row.phone != e164:
        log.warning("ussd: a session's step from another phone", extra=extra)
        return refused_screen(language)
    if tx.now_us - row.updated_at_us > SESSION_IDLE_S * US_PER_S:
        log.info("ussd: session expired", extra=extra)
        return _expired(language)
    if len(inputs) == seen and _sha(inputs, row) == row.inputs_sha256:
        log.info("ussd: replayed step", extra=extra)
        return (
            _Wait(seen) if row.screen_text == PENDING else Screen(row.screen_text, row.screen_end)
        )
    if row.screen_end or row.screen_text == PENDING:
        return _dial_again(language)
    if len(inputs) != seen + 1 or _sha(inputs[:-1], row) != row.inputs_sha256:
        log.warning("ussd: a step out of order", extra=extra)
        return _dial_again(language)
    state = State.from_json(row.state)
    if not keys_fit(state, inputs[-1]):
        log.info("ussd: letters where the number keys are read", extra=extra)
        return _number_keys_only(language)
    return _next(row, state, inputs)


def _quick_in(tx: Tx, database: str, was: SessionRow, e164: str, text: str) -> Screen | None:
    """A step that only reads, judged on ``was`` (the row this process wrote last) and
    saved in one statement if the stored row is still ``was``; ``None``: judge it on the
    row read under lock (anything else: a refusal, a replay, a flow's step, a miss)."""
    judged = _quick_judge(was, e164, text, tx.now_us)
    if judged is None:
        return None
    outcome = _show(tx, was, judged.step.state, judged.step.note)
    stored = repository.update_if_unchanged(tx, _saved(judged.claimed, outcome), was=was)
    return None if stored is None else _done(database, stored, outcome)


async def _quick_on_loop(led: Ledger, session_id: str, e164: str, text: str) -> Screen | None:
    """:func:`_quick_in` for a step whose screen reads nothing (a menu, a prompt), saved
    by one statement alone awaited on the event loop: no thread, no ``BEGIN``/``COMMIT``.
    ``None``: the step goes the usual way (no guess, a screen that reads, a refusal or a
    replay, SQLite, the stored row moved on, the database unreachable: the usual way
    then judges it on the row it reads and answers as always)."""
    was = written.guess(led.url, session_id)
    if was is None:
        return None
    now_us = to_us(led.now())
    judged = _quick_judge(was, e164, text, now_us)
    if judged is None:
        return None
    outcome = _show_plain(was, judged.step.state, judged.step.note)
    if outcome is None:
        return None
    saved = _saved(judged.claimed, outcome)
    try:
        stored = await repository.update_if_unchanged_on_loop(led, saved, was=was, now_us=now_us)
    except StorageError:
        log.warning("ussd: the step's statement on the loop failed; a transaction answers it")
        return None
    # None: not saved (the transaction tries the guess once more, then forgets it).
    return None if stored is None else _done(led.url, stored, outcome)


def _quick_judge(was: SessionRow, e164: str, text: str, now_us: int) -> _Quick | None:
    """The next step on ``was`` if it is a plain next step that only shows a screen;
    ``None`` for anything else (judged on the stored row instead)."""
    try:
        inputs = parse_text(text)
    except Refused:
        return None
    seen = was.inputs_seen
    if (
        was.phone != e164
        or was.screen_end
        or was.screen_text == PENDING
        or now_us - was.updated_at_us > SESSION_IDLE_S * US_PER_S
        or len(inputs) != seen + 1
        or _sha(inputs[:-1], was) != was.inputs_sha256
    ):
        return None
    state = State.from_json(was.state)
    if not keys_fit(state, inputs[-1]):
        return None
    judged = _next(was, state, inputs)
    if not isinstance(judged.step, Show):
        return None
    return _Quick(judged.claimed, judged.step)


def _next(row: SessionRow, state: State, inputs: list[str]) -> _Effect:
    """The step ``inputs[-1]`` takes from ``row`` (its menu ``state``; the claimed row
    ready, nothing written)."""
    seen = row.inputs_seen
    secrets = [*row.secret_positions, *([seen] if is_secret(state, inputs[-1]) else [])]
    claimed = replace(
        row,
        inputs_seen=seen + 1,
        secret_positions=secrets,
        inputs_sha256=inputs_sha256(blanked(inputs, secrets)),
        screen_text=PENDING,
        screen_end=False,
    )
    step = choose(state, inputs[-1], position=seen, pin_verified=_verified(row))
    return _Effect(row, claimed, step, inputs)


def _saved(claimed: SessionRow, outcome: _Outcome) -> SessionRow:
    """The session row that keeps the step's outcome."""
    state = outcome.state
    if state.pin_at is None and outcome.pin_verified_at_us is not None:
        state = replace(state, pin_at=State.from_json(claimed.state).pin_at)
    return replace(
        claimed,
        language=outcome.language,
        state=state.to_json(),
        pin_verified_at_us=outcome.pin_verified_at_us,
        screen_text=outcome.screen.text,
        screen_end=outcome.screen.end,
    )


def _save_in(
    tx: Tx, database: str, claimed: SessionRow, outcome: _Outcome, *, before: int
) -> Screen | _Wait:
    """Store the step's outcome if the session is still at ``before`` inputs."""
    stored = repository.update(tx, _saved(claimed, outcome), inputs_seen_before=before)
    return _Wait(claimed.inputs_seen) if stored is None else _done(database, stored, outcome)


def _done(database: str, stored: SessionRow, outcome: _Outcome) -> Screen:
    """A step saved as ``stored``: remembered as written (the next step's guess), logged
    at debug level (the request's own log line is the step's one line)."""
    written.keep(database, stored)
    log.debug(
        "ussd: step",
        extra={"ussd_session": stored.session_id, "menu": outcome.state.menu.value},
    )
    return outcome.screen


def _not_registered(language: str) -> Screen:
    return ended(tr(language, "ussd", "This number is not registered. Visit an agent to register."))


def _start_in(tx: Tx, database: str, session_id: str, e164: str) -> Screen | _Wait:
    """The first step of a session this service does not know yet: her main menu (the
    activation prompt while she is pending), stored; or wait for the screen another
    delivery of it stored first."""
    villager = villagers.find_villager_by_e164_in(tx, e164)
    if villager is None:
        log.info("ussd: unknown phone", extra={"ussd_session": session_id})
        return _not_registered(DEFAULT_LANGUAGE)
    language = villager.language.value
    if villager.state is VillagerState.LOCKED:
        return _locked(language)
    if villager.state is VillagerState.ACTIVE:
        screen, state = main_menu(language), State()
    else:  # pending_activation: this menu is her channel to set the PIN
        state = State(Menu.ACTIVATE_CODE)
        welcome = tr(language, "ussd", "Welcome to Village Ledger.")
        screen = ask(language, _prompt(language, state.menu), welcome)
    row = SessionRow(
        session_id=session_id,
        phone=e164,
        villager_id=villager.id,
        language=language,
        state=state.to_json(),
        inputs_seen=0,
        secret_positions=[],
        inputs_sha256=inputs_sha256([]),
        pin_verified_at_us=None,
        screen_text=screen.text,
        screen_end=screen.end,
        created_at_us=tx.now_us,
        updated_at_us=tx.now_us,
    )
    stored = repository.insert(tx, row)
    if stored is None:
        return _Wait(0)
    written.keep(database, stored)
    log.debug("ussd: session started", extra={"ussd_session": session_id})
    return screen


def _stored(led: Ledger, session_id: str, inputs_seen: int) -> Screen:
    """The screen another delivery of this step saved (waiting while it is worked on)."""
    deadline = time.monotonic() + PENDING_WAIT_S
    while True:
        row = led.transact(lambda tx: repository.select(tx, session_id))
        if row is None or row.inputs_seen != inputs_seen:
            return _dial_again(DEFAULT_LANGUAGE if row is None else row.language)
        if row.screen_text != PENDING:
            return Screen(row.screen_text, row.screen_end)
        if time.monotonic() > deadline:
            return _dial_again(row.language)
        time.sleep(PENDING_POLL_S)


def _effect(led: Ledger, work: _Effect) -> Screen:
    """Run a claimed step through its flow, then answer and save it; a step that fails
    is given back (the session as it was), so that a retry runs it."""
    row, claimed, before = work.row, work.claimed, work.claimed.inputs_seen
    try:
        after = _perform(led, row, work.step, work.inputs)
    except BaseException:
        led.transact(lambda tx: repository.update(tx, row, inputs_seen_before=before))
        raise

    def finish(tx: Tx) -> Screen | _Wait:
        outcome = after if isinstance(after, _Outcome) else _show(tx, after[0], *after[1])
        return _save_in(tx, led.url, claimed, outcome, before=before)

    done = led.transact(finish)
    return _stored(led, row.session_id, before) if isinstance(done, _Wait) else done


def _sha(inputs: list[str], row: SessionRow) -> str:
    return inputs_sha256(blanked(inputs, row.secret_positions))


def _verified(row: SessionRow) -> bool:
    return row.pin_verified_at_us is not None


_After = _Outcome | tuple[SessionRow, tuple[State, Note | None]]
"""A flow step's result: a final outcome, or the session and the screen to show."""


def _perform(led: Ledger, row: SessionRow, step: Step, inputs: list[str]) -> _After:
    if isinstance(step, VerifyPin):
        return _verify(led, row, step.after, inputs)
    if isinstance(step, FindTill):
        return _find_till(led, row, step)
    if isinstance(step, FindOrder):
        return _find_order(led, row, step)
    if isinstance(step, MakeWithdrawalCode):
        return _make_withdrawal_code(led, row, step, inputs)
    if isinstance(step, OrderAction):
        return _order_action(led, row, step, inputs)
    if isinstance(step, ChangePin):
        return _change_pin(led, row, step, inputs)
    if isinstance(step, Activate):
        return _activate(led, row, step, inputs)
    if isinstance(step, SetLanguage):
        return _set_language(led, row, step)
    return row, (step.state, step.note)


def _same(row: SessionRow, screen: Screen, state: State) -> _Outcome:
    return _Outcome(screen, state, row.language, row.pin_verified_at_us)


def _verify(led: Ledger, row: SessionRow, after: Menu, inputs: list[str]) -> _After:
    again = State(Menu.PIN, after=after)
    try:
        villagers.verify_pin_by_phone(led, phone=row.phone, pin=inputs[-1])
    except Refused as refusal:
        if refusal.code == "pin_invalid":
            return row, (again, Note.WRONG_PIN)
        if refusal.code == "pin_format_invalid":
            return row, (again, Note.PIN_FORMAT)
        return _same(row, _locked(row.language), again)
    verified = State(after, pin_at=len(inputs) - 1)
    return replace(row, pin_verified_at_us=to_us(led.now())), (verified, None)


def _order_action(led: Ledger, row: SessionRow, step: OrderAction, inputs: list[str]) -> _After:
    """The villager's step on her order, through the orders or consent flow."""
    state = State.from_json(row.state)
    if state.pin_at is None or not _verified(row):  # the menu asks the PIN first
        raise InvariantViolation("an order step without a verified PIN")
    step_id = uuid.uuid5(my_orders.STEP_NAMESPACE, f"{row.session_id}:{row.inputs_seen}")
    done = my_orders.act(
        led,
        language=row.language,
        villager_id=row.villager_id,
        step=step,
        step_id=step_id,
        state=state,
    )
    log.info("ussd: order step", extra={"ussd_session": row.session_id, "action": step.action})
    if isinstance(done, Screen):
        return _same(row, done, State(Menu.MAIN))
    return row, done


def _currency(led: Ledger, row: SessionRow) -> str:
    return led.transact(lambda tx: _villager(tx, row.villager_id)).currency


def _find_till(led: Ledger, row: SessionRow, step: FindTill) -> _After:
    pin_at = State.from_json(row.state).pin_at
    currency = _currency(led, row)
    agent = led.transact(lambda tx: withdraw.find_in(tx, step.till, currency))
    if agent is None:
        return row, (State(Menu.WITHDRAW_TILL, pin_at=pin_at), Note.TILL_UNKNOWN)
    return row, (State(Menu.WITHDRAW_AMOUNT, agent_id=str(agent.id), pin_at=pin_at), None)


def _find_order(led: Ledger, row: SessionRow, step: FindOrder) -> _After:
    """Her order with the typed reference (the reference itself is never logged)."""
    if not _verified(row):  # the menu asks the PIN first
        raise InvariantViolation("an order reference without a verified PIN")
    state = State.from_json(row.state)
    found = led.transact(lambda tx: my_orders.find_in(tx, row.villager_id, step.reference, state))
    log.info("ussd: order reference", extra={"ussd_session": row.session_id, "note": found[1]})
    return row, found


def _make_withdrawal_code(
    led: Ledger, row: SessionRow, step: MakeWithdrawalCode, inputs: list[str]
) -> _After:
    """The villager confirmed: the consent flow makes the code with the verified PIN."""
    state = State.from_json(row.state)
    if state.pin_at is None or not _verified(row):  # the menu asks the PIN first
        raise InvariantViolation("a withdrawal code without a verified PIN")
    currency = _currency(led, row)
    agent = led.transact(lambda tx: withdraw.agent_in(tx, step.agent_id))
    try:
        issued = consent.make_code_in_session(  # the PIN was verified once, for the session
            led,
            villager_id=row.villager_id,
            purpose=consent.Purpose.WITHDRAWAL,
            amount_minor=withdraw.minor(step.amount_major, currency),
            agent_id=agent.id,
        )
    except Refused as refusal:
        log.info("ussd: withdrawal code refused", extra={"code": refusal.code})
        shown = withdraw.refusal(row.language, refusal, state)
        if isinstance(shown, Screen):
            return _same(row, shown, State(Menu.MAIN))
        return row, shown
    log.info("ussd: withdrawal code made", extra={"ussd_session": row.session_id})
    done = withdraw.made_screen(row.language, agent, issued, currency)
    return _same(row, done, State(Menu.MAIN))


def _change_pin(led: Ledger, row: SessionRow, step: ChangePin, inputs: list[str]) -> _After:
    old, new, confirm = inputs[step.old_at], inputs[step.new_at], inputs[-1]
    ask_new = State(Menu.PIN_NEW, old_at=step.old_at)
    if new != confirm:
        return row, (ask_new, Note.PINS_DIFFER)
    try:
        villagers.change_pin(led, villager_id=row.villager_id, pin=old, new_pin=new)
    except Refused as refusal:
        notes = {
            "pin_too_weak": Note.PIN_TOO_WEAK,
            "pin_unchanged": Note.PIN_UNCHANGED,
            "pin_format_invalid": Note.PIN_FORMAT,
        }
        if refusal.code in notes:
            return row, (ask_new, notes[refusal.code])
        if refusal.code == "pin_invalid":
            return row, (State(Menu.PIN_OLD), Note.WRONG_PIN)
        return _same(row, _locked(row.language), State(Menu.MAIN))
    done = ended(tr(row.language, "ussd", "Your PIN is changed. Use the new PIN from now on."))
    return _Outcome(done, State(Menu.MAIN), row.language, to_us(led.now()))


_TRIES_LEFT = re.compile(r"(\d+) tries left")
"""How the villagers flow's ``activation_code_invalid`` detail tells the tries left."""


def _activate(led: Ledger, row: SessionRow, step: Activate, inputs: list[str]) -> _After:
    """A pending villager's code and new PIN (typed twice) through the villagers flow;
    then she is active and her PIN verified for this session (she goes on to the main
    menu: no second dial, no PIN typed again on a slow 2G session)."""
    new, confirm = inputs[step.new_at], inputs[-1]
    ask_pin = State(Menu.ACTIVATE_PIN, old_at=step.code_at)
    if new != confirm:
        return row, (ask_pin, Note.PINS_DIFFER)
    try:
        villagers.activate(led, phone=row.phone, activation_code=inputs[step.code_at], pin=new)
    except Refused as refusal:
        log.info(
            "ussd: activation refused", extra={"ussd_session": row.session_id, "code": refusal.code}
        )
        return _activation_refused(row, refusal, ask_pin)
    log.info("ussd: villager activated", extra={"ussd_session": row.session_id})
    verified = replace(row, pin_verified_at_us=to_us(led.now()))
    return verified, (State(Menu.MAIN, pin_at=step.new_at), Note.PIN_SET)


def _activation_refused(row: SessionRow, refusal: Refused, ask_pin: State) -> _After:
    language = row.language
    if refusal.code in ("pin_too_weak", "pin_format_invalid"):
        note = Note.PIN_TOO_WEAK if refusal.code == "pin_too_weak" else Note.PIN_FORMAT
        return row, (ask_pin, note)
    if refusal.code == "activation_code_invalid":
        left = _TRIES_LEFT.search(refusal.detail)
        said = (
            tr(language, "ussd", "Wrong code.")
            if left is None
            else tr(language, "ussd", "Wrong code. Tries left: {left}.", left=int(left[1]))
        )
        code = State(Menu.ACTIVATE_CODE)
        return _same(row, ask(language, _prompt(language, code.menu), said), code)
    if refusal.code == "activation_code_expired":
        text = tr(language, "ussd", "Your code has expired. Visit your agent for a new one.")
    else:  # activation_code_void: too many wrong codes
        text = tr(language, "ussd", "Too many wrong codes: the code is void. Visit your agent.")
    return _same(row, ended(text), State(Menu.ACTIVATE_CODE))


def _set_language(led: Ledger, row: SessionRow, step: SetLanguage) -> _After:
    villagers.set_language(led, villager_id=row.villager_id, language=step.language)
    return replace(row, language=step.language), (State(Menu.MAIN), Note.LANGUAGE_SAVED)


def note_text(language: str, note: Note | None) -> str | None:
    if note is None:
        return None
    texts = {
        Note.INVALID: tr(language, "ussd", "That is not a choice here."),
        Note.WRONG_PIN: tr(language, "ussd", "Wrong PIN."),
        Note.PIN_FORMAT: tr(language, "ussd", "A PIN is 4 to 6 digits."),
        Note.PINS_DIFFER: tr(language, "ussd", "The two new PINs differ."),
        Note.PIN_TOO_WEAK: tr(
            language, "ussd", "Too easy to guess: not one digit repeated or a straight run."
        ),
        Note.PIN_UNCHANGED: tr(language, "ussd", "The new PIN must differ from the PIN."),
        Note.LANGUAGE_SAVED: tr(language, "ussd", "Language saved."),
        Note.TILL_UNKNOWN: tr(language, "ussd", "No agent has that till number."),
        Note.AMOUNT_INVALID: tr(language, "ussd", "Type the amount in whole units, digits only."),
        Note.OVER_LIMIT: tr(language, "ussd", "That amount is above your limit."),
        Note.ORDER_NOT_NOW: tr(language, "ussd", "That cannot be done for this order now."),
        Note.CODE_FORMAT: tr(
            language, "ussd", "The code from the SMS is {digits} digits.", digits=CODE_DIGITS
        ),
        Note.PIN_SET: tr(language, "ussd", "Your PIN is set."),
        Note.REFERENCE_FORMAT: tr(
            language,
            "ussd",
            "A reference is {digits} characters: digits 0-9 and letters A-F.",
            digits=REFERENCE_DIGITS,
        ),
        Note.ORDER_UNKNOWN: tr(language, "ussd", "You have no order with that reference."),
        Note.REFERENCE_SHARED: tr(
            language, "ussd", "More than one of your orders has that reference. Choose one."
        ),
    }
    return texts[note]


def _show(tx: Tx, row: SessionRow, state: State, note: Note | None = None) -> _Outcome:
    """``state``'s screen in the session's language (money read now, PIN verified)."""
    plain = _show_plain(row, state, note)
    if plain is not None:
        return plain
    language, said = row.language, note_text(row.language, note)
    pin_at = state.pin_at  # a screen may rebuild its state: where the PIN was stays
    menu = state.menu
    if not _verified(row):
        raise InvariantViolation("a money screen before the PIN was verified")
    if menu is Menu.BALANCE:
        screen = ask(language, _balance(tx, row) + "\n" + tr(language, "ussd", "0 Back"), said)
    elif menu is Menu.STATEMENT:
        screen, page = _statement(tx, row, state.page)  # a full page: no room for a note
        state = replace(state, page=page)
    elif menu in WITHDRAW_MENUS:
        currency = _villager(tx, row.villager_id).currency
        screen, state = withdraw.screen(tx, language, state, currency, said)
    else:
        screen, state = my_orders.screen(tx, language, state, row.villager_id, said)
    if state.pin_at is None:
        state = replace(state, pin_at=pin_at)
    return _Outcome(screen, state, language, row.pin_verified_at_us)


def _show_plain(row: SessionRow, state: State, note: Note | None = None) -> _Outcome | None:
    """``state``'s screen when it reads nothing (a menu, a prompt); ``None`` for a screen
    that reads money (:data:`PIN_FIRST`)."""
    menu = state.menu
    if menu in PIN_FIRST:
        return None
    language, said = row.language, note_text(row.language, note)
    if menu is Menu.LANGUAGE:
        screen = language_menu(language, said)
    elif menu is Menu.MAIN:
        screen = main_menu(language, said)
    else:
        screen = ask(language, _prompt(language, menu), said)
    return _Outcome(screen, state, language, row.pin_verified_at_us)


def _prompt(language: str, menu: Menu) -> str:
    if menu is Menu.PIN:
        return tr(language, "ussd", "Enter your PIN")
    if menu is Menu.PIN_OLD:
        return tr(language, "ussd", "Enter your current PIN")
    if menu in (Menu.PIN_NEW, Menu.ACTIVATE_PIN):
        return tr(language, "ussd", "Enter a new PIN (4 to 6 digits)")
    if menu is Menu.ACTIVATE_CODE:
        return tr(language, "ussd", "Enter the activation code sent to you by SMS")
    return tr(language, "ussd", "Enter the new PIN again")


def _villager(tx: Tx, villager_id: uuid.UUID) -> Villager:
    found = villagers.get_villager_in(tx, villager_id)
    if found is None:  # sessions name villagers, who are never deleted
        raise InvariantViolation(f"a USSD session's villager {villager_id} is gone")
    return found


def _balance(tx: Tx, row: SessionRow) -> str:
    villager = _villager(tx, row.villager_id)
    found = tx.lookup_accounts([villager.wallet_id])
    if not found:
        raise InvariantViolation(f"villager {villager.id} has no wallet")
    wallet = found[0]
    posted = wallet.credits_posted - wallet.debits_posted
    available = posted - wallet.debits_pending
    return tr(
        row.language,
        "ussd",
        "Balance: {posted}\nAvailable: {available}",
        posted=format_money(posted, villager.currency),
        available=format_money(available, villager.currency),
    )


def _statement(tx: Tx, row: SessionRow, page: int) -> tuple[Screen, int]:
    villager = _villager(tx, row.villager_id)
    receipts = _last_receipts(tx, villager.id)
    zone = ZoneInfo(zone_of_phone(row.phone))
    lines = [
        statement_line(
            row.language,
            Line(
                day=event.created_at.astimezone(zone).strftime("%d/%m"),
                movement=str(event.payload.get("movement")),
                amount=format_money(int(event.payload["amount_minor"]), villager.currency),
                balance=format_money(int(event.payload["available_minor"]), villager.currency),
            ),
        )
        for event in reversed(receipts)
    ]
    if not lines:
        lines = [tr(row.language, "ussd", "No movements yet.")]
    return paged(row.language, tr(row.language, "ussd", "Mini statement"), lines, page)


def _last_receipts(tx: Tx, villager_id: uuid.UUID) -> list[events.Event]:
    """The villager's last :data:`STATEMENT_MOVEMENTS` wallet receipts, oldest first
    (the outbox is read forward, page by page: it has no backward read)."""
    last: deque[events.Event] = deque(maxlen=STATEMENT_MOVEMENTS)
    after = 0
    while True:
        page = events.read_events(
            tx, after_seq=after, limit=events.EVENTS_PAGE_MAX, party_id=villager_id
        )
        last.extend(e for e in page if e.type == events.WALLET_RECEIPT)
        if len(page) < events.EVENTS_PAGE_MAX:
            return list(last)
        after = page[-1].seq


def purge_sessions(led: Ledger, *, limit: int = PURGE_BATCH_MAX) -> int:
    """Delete up to ``limit`` (1..:data:`PURGE_BATCH_MAX`) sessions idle for
    :data:`PURGE_AFTER_S`, oldest first; how many went. Before that, the last screen of up
    to ``limit`` ended sessions idle past the session timeout is overwritten. Call it until
    it answers less than ``limit``."""
    if not 1 <= limit <= PURGE_BATCH_MAX:
        raise Refused("limit_invalid", f"limit is 1..{PURGE_BATCH_MAX}")

    def work(tx: Tx) -> int:
        # An ended session's last screen is never answered again once the session is idle
        # past SESSION_IDLE_S (a replay then answers "timed out"): a code's digits on it
        # are overwritten then, not kept for the day until the row goes.
        over_us = tx.now_us - SESSION_IDLE_S * US_PER_S
        repository.forget_ended_screens(tx, updated_before_us=over_us, blank=FORGOTTEN, limit=limit)
        before_us = tx.now_us - PURGE_AFTER_S * US_PER_S
        return repository.delete_idle(tx, updated_before_us=before_us, limit=limit)

    return led.transact(work)
