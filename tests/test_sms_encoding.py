"""The SMS alphabet and splitter (:mod:`sms.encoding`): pure, property-tested."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sms.encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    GSM7_PART_MAX,
    GSM7_SINGLE_MAX,
    UCS2_PART_MAX,
    UCS2_SINGLE_MAX,
    Encoding,
    encoding_of,
    split,
    units,
)

GSM7_CHARS = st.sampled_from(sorted(set(GSM7_BASIC) - {"\x1b"} | set(GSM7_EXTENSION)))
GSM7_TEXT = st.text(alphabet=GSM7_CHARS, max_size=700)
ANY_TEXT = st.text(max_size=400)


def test_the_default_alphabet_has_128_code_points_and_the_extension_ten() -> None:
    assert len(GSM7_BASIC) == 128
    assert GSM7_BASIC[0] == "@" and GSM7_BASIC[0x1B] == "\x1b" and GSM7_BASIC[0x41] == "A"
    assert GSM7_BASIC[0x7F] == "à" and GSM7_BASIC[0x24] == "¤"
    assert sorted(GSM7_EXTENSION) == sorted("\f^{}\\[~]|€")


def test_160_septets_are_one_message_161_are_two_parts_of_153_and_8() -> None:
    one = split("a" * GSM7_SINGLE_MAX)
    assert (one.encoding, one.units, len(one.parts)) == (Encoding.GSM7, 160, 1)
    two = split("a" * (GSM7_SINGLE_MAX + 1))
    assert [len(p) for p in two.parts] == [GSM7_PART_MAX, 8]


def test_70_ucs2_units_are_one_message_71_are_two_parts_of_67_and_4() -> None:
    one = split("ж" * UCS2_SINGLE_MAX)
    assert (one.encoding, one.units, len(one.parts)) == (Encoding.UCS2, 70, 1)
    two = split("ж" * (UCS2_SINGLE_MAX + 1))
    assert [len(p) for p in two.parts] == [UCS2_PART_MAX, 4]


def test_one_character_outside_gsm7_makes_the_whole_text_ucs2() -> None:
    text = "Salio " + "a" * 100 + " ✓"
    assert encoding_of(text) is Encoding.UCS2
    assert len(split(text).parts) == 2  # 108 units > 70
    assert encoding_of("Salio KES 1,250.00 @ 11:00 £ é Ä") is Encoding.GSM7


def test_extension_characters_count_two_and_are_never_cut_from_their_escape() -> None:
    assert units("€" * 80) == 160 and len(split("€" * 80).parts) == 1
    assert len(split("€" * 80 + "a").parts) == 2
    # 152 septets then an extension character: it cannot take the 153rd septet alone
    parts = split("a" * 152 + "{" + "b" * 10).parts
    assert parts[0] == "a" * 152 and parts[1].startswith("{")


def test_a_surrogate_pair_is_never_cut() -> None:
    text = "ж" * 66 + "😀" + "ж" * 10
    parts = split(text).parts
    assert parts[0] == "ж" * 66 and parts[1].startswith("😀")


@given(GSM7_TEXT)
def test_gsm7_parts_rejoin_and_each_fits(text: str) -> None:
    found = split(text)
    assert found.encoding is Encoding.GSM7
    assert "".join(found.parts) == text
    assert found.units == units(text)
    if found.units <= GSM7_SINGLE_MAX:
        assert found.parts == (text,)
    else:
        assert all(0 < units(p, Encoding.GSM7) <= GSM7_PART_MAX for p in found.parts)
        # greedy: a part could not have taken the next part's first character
        for part, after in zip(found.parts, found.parts[1:], strict=False):
            assert units(part + after[0], Encoding.GSM7) > GSM7_PART_MAX


@given(ANY_TEXT)
def test_any_text_rejoins_and_each_part_fits_its_encoding(text: str) -> None:
    found = split(text)
    assert "".join(found.parts) == text
    single, part_max = (
        (GSM7_SINGLE_MAX, GSM7_PART_MAX)
        if found.encoding is Encoding.GSM7
        else (UCS2_SINGLE_MAX, UCS2_PART_MAX)
    )
    assert (len(found.parts) == 1) == (found.units <= single)
    if len(found.parts) > 1:
        assert all(units(p, found.encoding) <= part_max for p in found.parts)
    if found.encoding is Encoding.UCS2:
        assert found.units == len(text.encode("utf-16-le")) // 2
