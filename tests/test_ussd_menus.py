"""The USSD menu's pure parts, no database: reading ``text``, blanking the PIN, what an
input means on each screen, and pages that always fit a handset's screen."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.flows.errors import Refused
from ledger.flows.orders import order_reference
from ledger.flows.ussd.menus import (
    REFERENCE_DIGITS,
    ChangePin,
    FindOrder,
    Note,
    SetLanguage,
    Show,
    VerifyPin,
    choose,
    is_secret,
    keys_fit,
    typed_reference,
)
from ledger.flows.ussd.model import (
    BLANK,
    INPUT_LENGTH_MAX,
    INPUTS_MAX,
    SCREEN_LENGTH_MAX,
    TEXT_LENGTH_MAX,
    Menu,
    Screen,
    State,
    blanked,
    inputs_sha256,
    parse_text,
)
from ledger.flows.ussd.screens import Line, main_menu, paged, pages, statement_line
from ledger.i18n import LANGUAGES, catalog


def refused(code: str) -> pytest.RaisesExc[Refused]:
    return pytest.raises(Refused, check=lambda e: e.code == code)


def test_text_is_split_into_inputs_of_a_phone_s_keys_within_the_limits() -> None:
    assert parse_text("") == []
    assert parse_text("1*2580*98") == ["1", "2580", "98"]
    assert parse_text("1**2") == ["1", "", "2"]  # a bare send is an empty input
    assert len(parse_text("*".join(["1"] * INPUTS_MAX))) == INPUTS_MAX
    with refused("ussd_too_many_inputs"):
        parse_text("*".join(["1"] * (INPUTS_MAX + 1)))
    assert parse_text("9" * INPUT_LENGTH_MAX) == ["9" * INPUT_LENGTH_MAX]
    with refused("ussd_input_too_long"):
        parse_text("9" * (INPUT_LENGTH_MAX + 1))
    with refused("ussd_text_too_long"):
        parse_text("1" * (TEXT_LENGTH_MAX + 1))
    with refused("ussd_text_too_long"):  # 1,000 inputs: refused before it is split
        parse_text("*".join(["1"] * 1000))
    # letters and spaces are keys too (which keys a screen reads is the menu's rule)
    assert parse_text("6*99*3f a2C9") == ["6", "99", "3f a2C9"]
    for text in ("1*<b>", "1# ", "١٢٣٤", "1*2.5", "-1", "1\n2", "1*\u00e9", "6*99*3fa2c\u0661"):
        with refused("ussd_input_not_keys"):
            parse_text(text)


def test_the_pin_is_blanked_before_the_inputs_are_digested() -> None:
    inputs = ["1", "739146", "0", "3"]
    assert blanked(inputs, [1]) == ["1", BLANK, "0", "3"]
    digest = inputs_sha256(blanked(inputs, [1]))
    assert len(digest) == 64 and "739146" not in digest
    assert inputs_sha256(blanked(["1", "000000", "0", "3"], [1])) == digest
    assert inputs_sha256(blanked(["2", "739146", "0", "3"], [1])) != digest
    assert inputs_sha256([]) != inputs_sha256([""])


def test_the_main_menu_asks_the_pin_before_money_once() -> None:
    main = State()
    assert choose(main, "1", position=0, pin_verified=False) == Show(
        State(Menu.PIN, after=Menu.BALANCE)
    )
    assert choose(main, "2", position=0, pin_verified=False) == Show(
        State(Menu.PIN, after=Menu.STATEMENT)
    )
    assert choose(main, "1", position=4, pin_verified=True) == Show(State(Menu.BALANCE))
    assert choose(main, "3", position=0, pin_verified=True) == Show(State(Menu.PIN_OLD))
    assert choose(main, "4", position=0, pin_verified=False) == Show(State(Menu.LANGUAGE))
    for junk in ("7", "", "98", "0"):
        assert choose(main, junk, position=0, pin_verified=False) == Show(main, Note.INVALID)
    pin = State(Menu.PIN, after=Menu.STATEMENT)
    assert choose(pin, "1234", position=1, pin_verified=False) == VerifyPin(Menu.STATEMENT)


def test_pin_screens_are_secret_and_a_change_remembers_where_not_what() -> None:
    secret = {m for m in Menu if is_secret(State(m), "1")}
    assert secret == {Menu.PIN, Menu.PIN_OLD, Menu.PIN_NEW, Menu.PIN_CONFIRM} | {
        Menu.ACTIVATE_CODE,
        Menu.ACTIVATE_PIN,
        Menu.ACTIVATE_CONFIRM,
    }
    # a PIN typed where a choice was asked is kept like a PIN
    assert is_secret(State(Menu.MAIN), "739") and not is_secret(State(Menu.MAIN), "98")
    assert is_secret(State(Menu.STATEMENT), "739146")
    step = choose(State(Menu.PIN_OLD), "739146", position=3, pin_verified=False)
    assert step == Show(State(Menu.PIN_NEW, old_at=3))
    assert isinstance(step, Show)
    step = choose(step.state, "4821", position=4, pin_verified=False)
    assert step == Show(State(Menu.PIN_CONFIRM, old_at=3, new_at=4))
    assert isinstance(step, Show)
    assert "739146" not in str(step.state.to_json())
    assert choose(step.state, "4821", position=5, pin_verified=False) == ChangePin(3, 4)


def test_paging_and_the_language_menu() -> None:
    statement = State(Menu.STATEMENT)
    assert choose(statement, "98", position=2, pin_verified=True) == Show(
        State(Menu.STATEMENT, page=1)
    )
    assert choose(State(Menu.STATEMENT, page=1), "0", position=3, pin_verified=True) == Show(
        statement
    )
    assert choose(statement, "0", position=2, pin_verified=True) == Show(State())
    assert choose(statement, "7", position=2, pin_verified=True) == Show(statement, Note.INVALID)
    language = State(Menu.LANGUAGE)
    assert choose(language, "2", position=1, pin_verified=False) == SetLanguage("sw")
    assert choose(language, "1", position=1, pin_verified=False) == SetLanguage("en")
    assert choose(language, "0", position=1, pin_verified=False) == Show(State())
    assert choose(language, "3", position=1, pin_verified=False) == Show(language, Note.INVALID)


def test_a_state_round_trips_through_json() -> None:
    for state in (
        State(),
        State(Menu.PIN, after=Menu.BALANCE),
        State(Menu.PIN_CONFIRM, 0, None, 3, 4),
    ):
        assert State.from_json(state.to_json()) == state


def test_a_screen_longer_than_182_is_a_bug() -> None:
    assert Screen("x" * SCREEN_LENGTH_MAX, end=False).wire == "CON " + "x" * SCREEN_LENGTH_MAX
    assert Screen("bye", end=True).wire == "END bye"
    with pytest.raises(ValueError):
        Screen("x" * (SCREEN_LENGTH_MAX + 1), end=True)


def test_every_message_fits_a_screen_in_every_language() -> None:
    for language in LANGUAGES:
        assert all(len(text) <= SCREEN_LENGTH_MAX for text in catalog(language, "ussd").values())
        assert len(main_menu(language, "A note that is long enough to matter here.").text) <= 182


@given(
    lines=st.lists(st.text(min_size=0, max_size=300), max_size=30),
    language=st.sampled_from(LANGUAGES),
)
def test_pages_fit_keep_every_line_in_order_and_say_more_and_back(
    lines: list[str], language: str
) -> None:
    more, back = ("98 More", "0 Back") if language == "en" else ("98 Zaidi", "0 Rudi")
    found = pages(language, "Mini statement", lines)
    assert all(len(page) <= SCREEN_LENGTH_MAX for page in found)
    assert all(page.endswith(back) for page in found)
    assert [more in page.split("\n") for page in found] == [True] * (len(found) - 1) + [False]
    shown = [line for page in found for line in page.split("\n")[:-1] if line != more]
    short = [line for line in lines if len(line) <= 150 and "\n" not in line]
    if len(short) == len(lines):
        assert shown == ["Mini statement", *lines]
    screen, index = paged(language, "Mini statement", lines, page=99)
    assert index == len(found) - 1 and screen.text == found[-1]


def test_a_statement_line_in_both_languages() -> None:
    line = Line(day="05/12", movement="debit", amount="KES 500.00", balance="KES 1,000.00")
    assert statement_line("en", line) == "05/12 out KES 500.00, bal KES 1,000.00"
    assert statement_line("sw", line) == "05/12 umetoa KES 500.00, salio KES 1,000.00"
    held = Line(day="05/12", movement="hold", amount="KES 5.00", balance="KES 0.00")
    assert statement_line("en", held) == "05/12 held KES 5.00, bal KES 0.00"


def test_a_line_too_long_for_a_screen_is_cut_with_three_dots() -> None:
    (page,) = pages("en", "Mini statement", ["x" * 300])
    title, cut, back = page.split("\n")
    assert (title, back) == ("Mini statement", "0 Back")
    assert cut.endswith("...") and set(cut[:-3]) == {"x"} and len(page) <= SCREEN_LENGTH_MAX
    assert page.isascii()


ORDER_IDS = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222")


def test_the_orders_list_asks_for_a_reference_and_reads_it_in_any_case() -> None:
    listed = State(Menu.ORDERS, page=1, order_ids=ORDER_IDS)
    asked = State(Menu.ORDER_REFERENCE, order_ids=ORDER_IDS)
    assert choose(listed, "99", position=3, pin_verified=True) == Show(asked)  # on any page
    empty = State(Menu.ORDERS)  # no orders: nothing to find, 99 is no choice
    assert choose(empty, "99", position=3, pin_verified=True) == Show(empty, Note.INVALID)
    for typed in ("3fa2c9", "3FA2C9", "3Fa2C9", "3f a2 c9", " 3FA2C9 "):
        assert choose(asked, typed, position=4, pin_verified=True) == FindOrder("3FA2C9")
    assert choose(asked, "120406", position=4, pin_verified=True) == FindOrder("120406")
    for bad in ("3fa2cg", "3fa2c", "3fa2c90", "zzzzzz", "", "1", "4821", "48213", "9" * 12):
        assert choose(asked, bad, position=4, pin_verified=True) == Show(
            asked, Note.REFERENCE_FORMAT
        )
    for back in ("0", " 0"):
        assert choose(asked, back, position=4, pin_verified=True) == Show(
            State(Menu.ORDERS, order_ids=ORDER_IDS)
        )
    assert State.from_json(asked.to_json()) == asked


def test_letters_are_read_only_on_the_reference_screen_and_are_no_pin() -> None:
    asked = State(Menu.ORDER_REFERENCE, order_ids=ORDER_IDS)
    assert keys_fit(asked, "3fa2c9") and keys_fit(asked, "3f a2") and keys_fit(asked, "zz")
    for menu in set(Menu) - {Menu.ORDER_REFERENCE}:
        assert not keys_fit(State(menu), "3fa2c9") and not keys_fit(State(menu), "1 2")
        assert keys_fit(State(menu), "12") and keys_fit(State(menu), "")
    # a reference with a letter is kept in the digest; anything a PIN could be is not
    for kept in ("3fa2c9", "3F A2 C9", "zzzzzzzzzzzz", "0", ""):
        assert not is_secret(asked, kept)
    for pin_like in ("4821", "48213", "739146", "7391 46", "123456789012"):
        assert is_secret(asked, pin_like)
    assert is_secret(State(Menu.PIN), "3fa2c9")


@given(order_id=st.uuids())
def test_every_order_s_reference_reads_back_in_either_case(order_id: uuid.UUID) -> None:
    shown = order_reference(order_id)
    assert len(shown) == REFERENCE_DIGITS and str(order_id).upper().startswith(shown)
    assert order_reference(str(order_id)) == shown
    assert typed_reference(shown) == shown
    assert typed_reference(shown.lower()) == shown
    assert typed_reference(shown[:3] + " " + shown[3:]) == shown
    assert typed_reference(shown[:-1]) is None and typed_reference(shown + "0") is None


def test_a_reference_is_made_of_an_order_id_only() -> None:
    with pytest.raises(ValueError):
        order_reference("3FA2C9")
