"""The villager's catalogs are complete: every ``tr(...)`` message in the code has an English
and a Swahili text with the same placeholders, and no catalog keeps a message nobody uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from ledger.core.errors import MalformedRequest
from ledger.i18n import DOMAINS, LANGUAGES, catalog, placeholders, tr

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("ledger", "api", "webhooks", "vledger", "sms")
WEB = ROOT / "api" / "web"
"""Pages' ES modules: ``t("msgid", {...})`` in ``api/web/<domain>/*.js`` is a message of
that folder's domain (``console/`` -> ``console``)."""


def used_messages() -> dict[str, set[str]]:
    """``domain -> msgids`` of every ``tr(language, "domain", "msgid", ...)`` call."""
    found: dict[str, set[str]] = {domain: set() for domain in DOMAINS}
    for folder in SOURCES:
        for _name, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder,
            method_map=[("**.py", "python")],
            keywords={"tr": (2, 3)},
            comment_tags=(),
            strip_comment_tags=True,
        ):
            domain, msgid = message if isinstance(message, tuple) else (None, None)
            assert domain in DOMAINS, f"tr() names an unknown domain: {message!r}"
            if msgid:
                found[domain].add(msgid)
    for domain in DOMAINS:
        if (WEB / domain).is_dir():
            found[domain].update(msgid for _domain, msgid in js_messages(WEB / domain, domain))
    return found


def js_messages(folder: Path, domain: str) -> list[tuple[str, str]]:
    """``(domain, msgid)`` of every ``t("msgid", ...)`` call in the ES modules under
    ``folder`` (Babel's javascript extractor): a page folder ``api/web/<domain>/`` is
    checked once its domain is in :data:`DOMAINS` (``console``)."""
    found = []
    for name, _line, message, _comments, _context in extract_from_dir(
        folder,
        method_map=[("**.js", "javascript")],
        keywords={"t": None},
        comment_tags=(),
        strip_comment_tags=True,
    ):
        assert isinstance(message, str), f"{name}: t() takes one message: {message!r}"
        found.append((domain, message))
    return found


def test_every_message_is_in_every_language_with_its_placeholders() -> None:
    used = used_messages()
    problems = []
    for domain, msgids in used.items():
        for language in LANGUAGES:
            texts = catalog(language, domain)
            for msgid in sorted(msgids):
                text = texts.get(msgid)
                if text is None:
                    problems.append(f"{language}/{domain}: untranslated {msgid!r}")
                elif placeholders(text) != placeholders(msgid):
                    problems.append(f"{language}/{domain}: placeholders differ in {text!r}")
            stale = sorted(set(texts) - msgids)
            problems += [f"{language}/{domain}: unused {msgid!r}" for msgid in stale]
    assert problems == []


def test_the_shared_page_modules_name_no_message_of_their_own() -> None:
    """``api/web/shared/*.js`` belongs to no domain, so a ``t("...")`` there would escape
    the check above: the words are the apps' (their folders), never the shared modules'."""
    assert (WEB / "shared" / "i18n.js").is_file()
    assert js_messages(WEB / "shared", "shared") == []


def test_the_check_finds_a_message_missing_from_swahili(tmp_path: Path) -> None:
    """The extraction sees a ``tr`` call, so a new untranslated message fails the test above."""
    (tmp_path / "screen.py").write_text('tr(lang, "ussd", "A message nobody translated")\n')
    extracted = [m for *_x, m, _c, _ctx in extract_from_dir(tmp_path, keywords={"tr": (2, 3)})]
    assert extracted == [("ussd", "A message nobody translated")]
    assert "A message nobody translated" not in catalog("sw", "ussd")


def test_the_check_finds_a_page_message_and_its_domain(tmp_path: Path) -> None:
    """A page's ``t("...")`` call is extracted, concatenated
    strings joined, so an untranslated page message fails the first test too."""
    (tmp_path / "page.js").write_text(
        'el("h1", {}, t("A page message " + "nobody translated", { n: 1 }));\n'
    )
    assert js_messages(tmp_path, "console") == [("console", "A page message nobody translated")]
    assert "A page message nobody translated" not in catalog("sw", "console")


def test_tr_fills_placeholders_falls_back_to_english_and_strips_control_characters() -> None:
    assert tr("sw", "ussd", "Not in any catalog {x}", x="1") == "Not in any catalog 1"
    marked = tr("fr", "ussd", "Not in any catalog {x}", x="\x1b[31mA\nB")
    assert marked == "Not in any catalog [31mAB"
    with pytest.raises(MalformedRequest):
        catalog("sw", "email")


def test_times_are_shown_in_the_zone_of_the_phones_country() -> None:
    from ledger.i18n import zone_of_phone

    assert zone_of_phone("+254700000001") == "Africa/Nairobi"
    assert zone_of_phone("+256700000001") == "Africa/Kampala"
    assert zone_of_phone("+1 212 555 0100", "Africa/Nairobi") != "Africa/Nairobi"  # New York
    assert zone_of_phone("not a phone", "Africa/Nairobi") == "Africa/Nairobi"
