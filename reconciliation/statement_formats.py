"""Provider statements read as a stream of lines, in integer minor units.

Three formats, each read by :func:`open_statement` into a :class:`StatementReader`:

``csv``
    A CSV export with a **declared** column mapping (nothing is guessed from headers).
    The mapping comes from job options, or from a TOML or JSON file named by
    ``mapping=FILE`` (options given beside it win). Keys:

    - ``columns``: ``date:Date,amount:Amount,reference:Ref,description:Details`` in an
      option; a table (``[columns]``) in a file. Fields: ``date`` (required), either
      ``amount`` (signed: money into the provider account is positive) or both ``credit``
      and ``debit`` (unsigned; a debit is an outflow whatever its sign), and optionally
      ``reference`` (the provider's own reference), ``description`` and ``balance`` (the
      running balance after the line, checked line by line).
    - ``currency`` (ISO 4217; required for CSV), ``date_format`` (``strptime``, default
      ``%Y-%m-%d``; a date-time format keeps the date), ``delimiter`` (default ``,``),
      ``decimal`` (default ``.``), ``thousands`` (default: none allowed), ``encoding``
      (default ``utf-8-sig``), ``opening`` and ``closing`` (the statement's balances, as
      decimal text; needed unless a ``balance`` column gives them).

``camt053``
    ISO 20022 ``camt.053`` (versions 001.02 to 001.12), one ``Stmt`` per file. Parsed
    with ``defusedxml`` (a DTD, an entity or an external reference is refused) as a
    stream: each booked ``Ntry`` is one line (its entry amount and ``CdtDbtInd``; the
    booking date, else the value date; the reference is ``AcctSvcrRef``), the balances
    are the ``OPBD`` (else ``PRCD``) and ``CLBD`` ``Bal`` elements. Entries whose status
    is not booked are skipped and counted.

``mt940``
    SWIFT MT940 through ``mt-940`` (one statement per file). A ``:61:`` line is one
    line: the entry date if given (else the value date), the signed amount, and the
    reference of the account servicing institution (after ``//``), else the account
    owner's reference unless it is ``NONREF``. Balances are ``:60F:``/``:60M:`` and
    ``:62F:``/``:62M:``.

Amounts are decimal text (ASCII digits) turned into minor units with integer arithmetic
(:func:`to_minor`); an amount with more decimals than its currency has, or beyond
:data:`~ledger.limits.AMOUNT_MAX_MINOR` minor units either way, is refused, as is a
malformed date, and a statement whose amounts, summed without their signs, pass
:data:`AMOUNTS_SUM_MAX_MINOR`. Every fault in a file is a :class:`ValueError` naming the
file (and the line, when there is one); nothing else escapes, whatever the bytes
(``tests/test_fuzz_parsers.py``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

from ledger.core import currency as iso4217
from ledger.limits import AMOUNT_MAX_MINOR, REFERENCE_LENGTH_MAX

__all__ = [
    "FORMATS",
    "REFERENCE_LENGTH_MAX",
    "StatementLine",
    "StatementReader",
    "open_statement",
    "to_minor",
]

FORMATS = ("csv", "camt053", "mt940")
LINES_MAX = 10_000_000
"""Statement lines per file."""
AMOUNTS_SUM_MAX_MINOR = 2**62
"""The lines' amounts summed without their signs: any sum the matching takes in SQL
(``reconciliation.matching``, a BIGINT) then fits."""
DESCRIPTION_LENGTH_MAX = 500
"""A line's description is cut to this many characters."""
MT940_BYTES_MAX = 64 * 1024 * 1024
"""``mt-940`` reads a file whole, so its size is bounded."""
CSV_FIELD_LENGTH_MAX = 4096
MAPPING_BYTES_MAX = 64 * 1024

_EXTENSIONS = {".csv": "csv", ".xml": "camt053", ".sta": "mt940", ".mt940": "mt940"}
_DECIMAL_TEXT = re.compile(r"([+-]?)(\d+)(?:\.(\d+))?", re.ASCII)
_WHOLE_DIGITS_MAX = len(str(AMOUNT_MAX_MINOR))
"""More whole digits than this is beyond any amount (checked before ``int``, which
refuses long digit strings in its own words)."""
_CSV_FIELDS = ("date", "amount", "credit", "debit", "reference", "description", "balance")
_CSV_KEYS = frozenset(
    {
        "format",
        "mapping",
        "columns",
        "currency",
        "date_format",
        "delimiter",
        "decimal",
        "thousands",
        "encoding",
        "opening",
        "closing",
    }
)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One line of a provider statement; ``amount_minor`` is signed (into the provider
    account positive) in minor units of the statement's currency."""

    line_no: int
    booked_on: date
    amount_minor: int
    reference: str | None
    description: str | None


@dataclass(slots=True)
class StatementReader:
    """A statement being read: :meth:`lines` streams it once; the balances and the
    counts are complete after that."""

    format: str
    currency: str
    _lines: Iterator[StatementLine]
    opening_minor: int | None = None
    closing_minor: int | None = None
    running_break: tuple[int, int, int] | None = None
    """The first line whose running balance disagrees: (line, expected, stated)."""
    skipped: int = 0
    """Entries that are not booked money (camt.053 ``Sts`` other than ``BOOK``)."""
    notes: list[str] = field(default_factory=list)

    def lines(self) -> Iterator[StatementLine]:
        magnitude = 0
        for count, line in enumerate(self._lines, start=1):
            if count > LINES_MAX:
                raise ValueError(f"statement has more than {LINES_MAX} lines")
            magnitude += abs(line.amount_minor)
            if magnitude > AMOUNTS_SUM_MAX_MINOR:
                raise ValueError(
                    f"line {line.line_no}: the amounts so far sum past {AMOUNTS_SUM_MAX_MINOR}"
                    " minor units (signs ignored)"
                )
            yield line


def to_minor(text: str | Decimal, currency: str, *, where: str = "amount") -> int:
    """Decimal text (``-1234.50``, ASCII digits) or a :class:`Decimal` as integer minor
    units of ``currency``, exactly; more decimals than the currency has, or a magnitude
    beyond :data:`~ledger.limits.AMOUNT_MAX_MINOR` minor units, is a :class:`ValueError`."""
    digits = iso4217.minor_digits(currency)
    if isinstance(text, str):
        found = _DECIMAL_TEXT.fullmatch(text.strip())
        if found is None:
            raise ValueError(f"{where}: not a decimal amount: {text!r}")
        sign, whole, fraction = found.group(1), found.group(2), found.group(3) or ""
        if len(fraction) > digits:
            raise ValueError(f"{where}: {text!r} has more decimals than {currency} has ({digits})")
        if len(whole.lstrip("0")) > _WHOLE_DIGITS_MAX:
            raise ValueError(f"{where}: {text[:40]!r}... is beyond any amount")
        magnitude = int(whole + fraction + "0" * (digits - len(fraction)))
        return _bounded(-magnitude if sign == "-" else magnitude, where)
    if not text.is_finite():
        raise ValueError(f"{where}: not a finite amount: {text!r}")
    negative, figures, exponent = text.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    if exponent < -digits:
        raise ValueError(f"{where}: {text} has more decimals than {currency} has ({digits})")
    if len(figures) + exponent > _WHOLE_DIGITS_MAX:
        raise ValueError(f"{where}: {text} is beyond any amount")
    scale: int = 10 ** (exponent + digits)  # exponent >= -digits: an integer
    magnitude = int("".join(map(str, figures)) or "0") * scale
    return _bounded(-magnitude if negative else magnitude, where)


def _bounded(minor: int, where: str) -> int:
    if abs(minor) > AMOUNT_MAX_MINOR:
        raise ValueError(f"{where}: {minor} minor units is beyond {AMOUNT_MAX_MINOR} either way")
    return minor


def _check_currency(code: str | None, where: str) -> str:
    if code is None or not iso4217.is_supported(code):
        raise ValueError(f"{where}: {code!r} is not an active ISO 4217 currency")
    return code


def _reference(text: str | None, where: str) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    if len(text) > REFERENCE_LENGTH_MAX:
        raise ValueError(f"{where}: reference longer than {REFERENCE_LENGTH_MAX} characters")
    return text


def _description(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text[:DESCRIPTION_LENGTH_MAX] or None


def open_statement(path: Path, options: Mapping[str, str]) -> StatementReader:
    """Open ``path`` as the format ``options['format']`` names (else by its extension:
    ``.csv``, ``.xml`` camt.053, ``.sta``/``.mt940``); the statement's currency must
    agree with ``options['currency']`` when both say one."""
    settings = dict(options)
    mapping_path = settings.get("mapping")
    if mapping_path:
        settings = {**_mapping_file(Path(mapping_path)), **settings}
    fmt = settings.get("format") or _EXTENSIONS.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ValueError(
            f"statement format {fmt!r} unknown: give --option format=" + "|".join(FORMATS)
        )
    wanted = settings.get("currency")
    if wanted is not None:
        _check_currency(wanted, "option currency")
    if fmt == "csv":
        return _csv_reader(path, settings)
    reader = _camt_reader(path) if fmt == "camt053" else _mt940_reader(path)
    if wanted is not None and wanted != reader.currency:
        raise ValueError(f"statement is in {reader.currency}, not {wanted} (option currency)")
    return reader


def _mapping_file(path: Path) -> dict[str, str]:
    """A CSV mapping from TOML (``.toml``) or JSON: flat keys, ``columns`` a table."""
    data = path.read_bytes()
    if len(data) > MAPPING_BYTES_MAX:
        raise ValueError(f"mapping {path}: larger than {MAPPING_BYTES_MAX} bytes")
    try:
        loaded: Any = tomllib.loads(data.decode()) if path.suffix == ".toml" else json.loads(data)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"mapping {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"mapping {path}: not a table of settings")
    flat: dict[str, str] = {}
    for key, value in loaded.items():
        if key == "columns":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError(f"mapping {path}: columns is a table of field = header")
            flat[key] = ",".join(f"{k}:{v}" for k, v in value.items())
        elif isinstance(value, str | int) and not isinstance(value, bool):
            flat[key] = str(value)
        else:
            raise ValueError(f"mapping {path}: {key} must be text")
    return flat


# -- CSV ----------------------------------------------------------------------------------


def _columns(spec: str) -> dict[str, str]:
    columns: dict[str, str] = {}
    for part in spec.split(","):
        name, colon, header = part.partition(":")
        name = name.strip()
        if not colon or name not in _CSV_FIELDS or not header:
            raise ValueError(
                f"columns: {part!r} is not FIELD:HEADER with FIELD one of {', '.join(_CSV_FIELDS)}"
            )
        if name in columns:
            raise ValueError(f"columns: {name} given twice")
        columns[name] = header
    if "date" not in columns:
        raise ValueError("columns: the date column is required")
    if ("amount" in columns) == ("credit" in columns or "debit" in columns):
        raise ValueError("columns: give amount, or both credit and debit")
    if ("credit" in columns) != ("debit" in columns):
        raise ValueError("columns: credit and debit go together")
    return columns


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    """A CSV statement's declared shape: its columns (field -> header) and how its text
    reads."""

    columns: dict[str, str]
    currency: str
    date_format: str
    decimal_mark: str
    thousands: str
    delimiter: str
    encoding: str
    closing_given: bool
    """``--option closing`` was given: the balance column does not set the closing."""

    def amount(self, text: str, where: str) -> int:
        cleaned = text.strip().replace(self.thousands, "") if self.thousands else text.strip()
        if self.decimal_mark != ".":
            if "." in cleaned:
                raise ValueError(
                    f"{where}: {text!r} has '.' but the decimal mark is {self.decimal_mark!r}"
                )
            cleaned = cleaned.replace(self.decimal_mark, ".")
        return to_minor(cleaned, self.currency, where=where)


def _csv_layout(settings: dict[str, str]) -> _CsvLayout:
    unknown = set(settings) - _CSV_KEYS
    if unknown:
        raise ValueError(f"CSV options unknown: {', '.join(sorted(unknown))}")
    if "columns" not in settings:
        raise ValueError("a CSV statement needs its columns declared: --option columns=...")
    columns = _columns(settings["columns"])
    currency = _check_currency(settings.get("currency"), "a CSV statement needs a currency")
    date_format = settings.get("date_format", "%Y-%m-%d")
    decimal_mark = settings.get("decimal", ".")
    thousands = settings.get("thousands", "")
    delimiter = settings.get("delimiter", ",")
    if len(delimiter) != 1 or len(decimal_mark) != 1 or len(thousands) > 1:
        raise ValueError("delimiter and decimal are one character; thousands one or none")
    if decimal_mark == thousands:
        raise ValueError("decimal and thousands marks must differ")
    return _CsvLayout(
        columns,
        currency,
        date_format,
        decimal_mark,
        thousands,
        delimiter,
        _text_encoding(settings.get("encoding", "utf-8-sig")),
        "closing" in settings,
    )


def _text_encoding(name: str) -> str:
    """``name`` if it is a text encoding that :func:`open` takes."""
    try:
        io.TextIOWrapper(io.BytesIO(), encoding=name)
    except (LookupError, ValueError):
        raise ValueError(f"encoding {name!r} is not a text encoding") from None
    return name


def _csv_reader(path: Path, settings: dict[str, str]) -> StatementReader:
    layout = _csv_layout(settings)
    reader = StatementReader("csv", layout.currency, iter(()))
    if "opening" in settings:
        reader.opening_minor = to_minor(
            settings["opening"], layout.currency, where="option opening"
        )
    if "closing" in settings:
        reader.closing_minor = to_minor(
            settings["closing"], layout.currency, where="option closing"
        )
    if "balance" not in layout.columns and (
        reader.opening_minor is None or reader.closing_minor is None
    ):
        raise ValueError(
            "a CSV statement needs its balances: --option opening=... closing=..., or a"
            " balance column"
        )
    reader._lines = _csv_lines(path, layout, reader)
    return reader


@dataclass(slots=True)
class _RunningBalance:
    """The balance column checked line by line; the first line that disagrees is the
    reader's ``running_break``. Without ``--option opening`` the first line gives the
    opening, without ``--option closing`` the last gives the closing."""

    reader: StatementReader
    closing_given: bool
    previous: int | None

    def check(self, line_no: int, amount_minor: int, balance: int) -> None:
        reader = self.reader
        if self.previous is None:
            self.previous = balance - amount_minor
            if reader.opening_minor is None:
                reader.opening_minor = self.previous
        if self.previous + amount_minor != balance and reader.running_break is None:
            reader.running_break = (line_no, self.previous + amount_minor, balance)
        self.previous = balance
        if not self.closing_given:
            reader.closing_minor = balance


def _csv_header(
    path: Path, rows: Iterator[list[str]], columns: dict[str, str]
) -> tuple[dict[str, int], int]:
    """(field -> the index of its column, how many columns), from the header row."""
    try:
        header = next(rows)
    except StopIteration:
        raise ValueError(f"{path.name}: empty CSV file (no header row)") from None
    except (ValueError, csv.Error) as exc:  # not text in the encoding, a field too long
        raise ValueError(f"{path.name} header: {exc}") from None
    index = {name: i for i, name in enumerate(header)}
    missing = [h for h in columns.values() if h not in index]
    if missing:
        raise ValueError(f"{path.name}: header has no column {', '.join(map(repr, missing))}")
    return {name: index[h] for name, h in columns.items()}, len(header)


def _csv_amount(row: list[str], at: dict[str, int], layout: _CsvLayout) -> int:
    """The signed amount: the amount column, or a credit (in) or a debit (out)."""
    at_amount = at.get("amount")
    if at_amount is not None:
        return layout.amount(row[at_amount], "amount")
    credit, debit = row[at["credit"]].strip(), row[at["debit"]].strip()
    if bool(credit) == bool(debit):
        raise ValueError("give a credit or a debit, not both or none")
    return layout.amount(credit, "credit") if credit else -abs(layout.amount(debit, "debit"))


@dataclass(frozen=True, slots=True)
class _CsvFile:
    """One CSV statement being read: where each field is, and what the rows so far
    left (the running balance, the dates seen)."""

    layout: _CsvLayout
    at: dict[str, int]
    """Field -> the index of its column."""
    fields: int
    """Columns in the header: every row has as many."""
    running: _RunningBalance
    dates: dict[str, date] = field(default_factory=dict)

    def line(self, line_no: int, row: list[str]) -> StatementLine:
        at, layout = self.at, self.layout
        if len(row) != self.fields:
            raise ValueError(f"{len(row)} fields, header has {self.fields}")
        booked_on = _csv_date(row[at["date"]], layout.date_format, self.dates)
        amount_minor = _csv_amount(row, at, layout)
        if "balance" in at:
            balance = layout.amount(row[at["balance"]], "balance")
            self.running.check(line_no, amount_minor, balance)
        at_reference, at_description = at.get("reference"), at.get("description")
        return StatementLine(
            line_no,
            booked_on,
            amount_minor,
            None if at_reference is None else _reference(row[at_reference], "reference"),
            None if at_description is None else _description(row[at_description]),
        )


def _csv_lines(path: Path, layout: _CsvLayout, reader: StatementReader) -> Iterator[StatementLine]:
    """The lines of a CSV statement, read as they are asked for."""
    csv.field_size_limit(CSV_FIELD_LENGTH_MAX)
    with path.open(newline="", encoding=layout.encoding) as handle:
        rows = csv.reader(handle, delimiter=layout.delimiter)
        at, fields = _csv_header(path, rows, layout.columns)
        running = _RunningBalance(reader, layout.closing_given, reader.opening_minor)
        file = _CsvFile(layout, at, fields, running)
        line_no = 0
        try:
            for row in rows:
                if not row:
                    continue
                line_no += 1
                yield file.line(line_no, row)
        except (ValueError, csv.Error) as exc:
            raise ValueError(f"{path.name} line {rows.line_num}: {exc}") from None
        if reader.opening_minor is None or reader.closing_minor is None:
            # a balance column and no lines: they give no balance
            raise ValueError(f"{path.name}: no lines and no --option opening/closing")


_DATES_CACHED_MAX = 4096
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _csv_date(text: str, date_format: str, cache: dict[str, date]) -> date:
    """``text`` in ``date_format``; a statement repeats its dates, so they are cached."""
    found = cache.get(text)
    if found is not None:
        return found
    cleaned = text.strip()
    try:
        if date_format == "%Y-%m-%d":
            if not _ISO_DATE.fullmatch(cleaned):
                raise ValueError(cleaned)
            found = date.fromisoformat(cleaned)
        else:
            found = datetime.strptime(cleaned, date_format).date()  # noqa: DTZ007 (a date)
    except ValueError:
        raise ValueError(f"{text!r} is not a date in the form {date_format}") from None
    if len(cache) >= _DATES_CACHED_MAX:
        cache.clear()
    cache[text] = found
    return found


# -- camt.053 -----------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element: Element | None, *path: str) -> Element | None:
    """The first descendant along ``path`` of local names (namespaces ignored)."""
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c.tag) == name), None)
    return element


def _text(element: Element | None, *path: str) -> str | None:
    found = _child(element, *path)
    return None if found is None or found.text is None else found.text.strip()


def _iso_date(text: str | None, where: str) -> date:
    if not text:
        raise ValueError(f"{where}: no date")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an ISO date") from None


def _signed_amount(element: Element, currency: str | None, where: str) -> tuple[int, str]:
    amt = _child(element, "Amt")
    if amt is None or amt.text is None:
        raise ValueError(f"{where}: no Amt")
    code = _check_currency(amt.get("Ccy"), f"{where} Amt/@Ccy")
    if currency is not None and code != currency:
        raise ValueError(f"{where}: amount in {code}, statement in {currency}")
    indicator = _text(element, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise ValueError(f"{where}: CdtDbtInd is {indicator!r}, not CRDT or DBIT")
    minor = to_minor(amt.text, code, where=f"{where} Amt")
    if minor < 0:
        raise ValueError(f"{where}: a camt amount is unsigned (CdtDbtInd gives the sign)")
    return (minor if indicator == "CRDT" else -minor), code


def _camt_reader(path: Path) -> StatementReader:
    reader = StatementReader("camt053", "", iter(()))
    # Read up to the first entry now: the currency (from the balances) must be known
    # before the job stages anything.
    events = _camt_events(path, reader)
    first = next(events, None)
    if not reader.currency:
        raise ValueError(f"{path.name}: camt.053 statement without a balance or entry currency")

    def lines() -> Iterator[StatementLine]:
        if first is not None:
            yield first
        yield from events
        if reader.opening_minor is None or reader.closing_minor is None:
            raise ValueError(f"{path.name}: camt.053 statement without OPBD and CLBD balances")

    reader._lines = lines()
    return reader


def _camt_balance(path: Path, element: Element, reader: StatementReader, opening_kind: str) -> str:
    """Take a ``Bal``'s amount as the opening (``OPBD``, else ``PRCD``) or the closing
    (``CLBD``); answers the kind the opening now comes from."""
    kind = _text(element, "Tp", "CdOrPrtry", "Cd")
    if kind not in ("OPBD", "PRCD", "CLBD"):
        return opening_kind
    minor, code = _signed_amount(element, reader.currency or None, f"{path.name} balance {kind}")
    reader.currency = code
    if kind == "CLBD":
        reader.closing_minor = minor
    elif kind == "OPBD" or opening_kind != "OPBD":
        reader.opening_minor, opening_kind = minor, kind
    return opening_kind


def _camt_entry(
    path: Path, element: Element, reader: StatementReader, line_no: int
) -> StatementLine | None:
    """A booked ``Ntry`` as statement line ``line_no``; ``None`` (counted as skipped) for
    an entry that is not booked."""
    where = f"{path.name} entry {line_no + reader.skipped}"
    status = _text(element, "Sts", "Cd") or _text(element, "Sts")
    if status is not None and status != "BOOK":
        reader.skipped += 1
        return None
    minor, code = _signed_amount(element, reader.currency or None, where)
    reader.currency = code
    booked = _text(element, "BookgDt", "Dt") or _text(element, "BookgDt", "DtTm")
    valued = _text(element, "ValDt", "Dt") or _text(element, "ValDt", "DtTm")
    details = _child(element, "NtryDtls", "TxDtls")
    reference = _text(element, "AcctSvcrRef") or _text(details, "Refs", "AcctSvcrRef")
    info = _text(element, "AddtlNtryInf") or _text(details, "RmtInf", "Ustrd")
    return StatementLine(
        line_no,
        _iso_date(booked or valued, where),
        minor,
        _reference(reference, where),
        _description(info),
    )


def _camt_events(path: Path, reader: StatementReader) -> Iterator[StatementLine]:
    """The booked entries of the camt.053 file at ``path``; whatever its bytes, a fault is
    a :class:`ValueError` naming the file."""
    try:
        yield from _camt_elements(path, reader)
    except DefusedXmlException as exc:
        raise ValueError(f"{path.name}: XML refused ({type(exc).__name__}: {exc})") from None
    except SyntaxError as exc:  # ElementTree's ParseError
        raise ValueError(f"{path.name}: not well-formed XML: {exc}") from None
    except LookupError as exc:  # the declaration names an encoding Python has no text codec for
        raise ValueError(f"{path.name}: XML in an unknown encoding: {exc}") from None


def _camt_elements(path: Path, reader: StatementReader) -> Iterator[StatementLine]:
    statements = 0
    statement: Element | None = None
    open_elements: list[Element] = []  # started, not ended: an entry's parent is the last
    line_no = 0
    opening_kind = ""
    parsed = safe_xml.iterparse(
        str(path), events=("start", "end"), forbid_dtd=True, forbid_entities=True
    )
    for event, element in parsed:
        name = _local(element.tag)
        if event == "start":
            open_elements.append(element)
            if name in ("Stmt", "Rpt"):
                statements += 1
                if statements > 1:
                    raise ValueError(f"{path.name}: more than one Stmt; one statement per run")
                statement = element
            continue
        open_elements.pop()
        if statement is None:
            continue
        if name == "Bal" and _child(element, "Tp", "CdOrPrtry", "Cd") is not None:
            opening_kind = _camt_balance(path, element, reader, opening_kind)
        elif name == "Ntry":
            line = _camt_entry(path, element, reader, line_no + 1)
            if open_elements:  # keep memory bounded on a long statement
                open_elements[-1].remove(element)
            if line is not None:
                line_no += 1
                yield line
    if statements == 0:
        raise ValueError(f"{path.name}: no camt.053 Stmt element")


# -- MT940 --------------------------------------------------------------------------------


def _mt940_reader(path: Path) -> StatementReader:
    import mt940

    size = path.stat().st_size
    if size > MT940_BYTES_MAX:
        raise ValueError(f"{path.name}: MT940 file larger than {MT940_BYTES_MAX} bytes")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    try:
        statements = mt940.parse_statements(text)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ValueError(f"{path.name}: not an MT940 statement: {exc}") from None
    except ArithmeticError:  # decimal.InvalidOperation: an amount such as ",,"
        raise ValueError(f"{path.name}: an MT940 amount is not a decimal number") from None
    statements = [s for s in statements if s.data or len(s)]
    if len(statements) != 1:
        raise ValueError(f"{path.name}: {len(statements)} MT940 statements; one per run")
    parsed = statements[0]
    opening = parsed.data.get("final_opening_balance") or parsed.data.get(
        "intermediate_opening_balance"
    )
    closing = parsed.data.get("final_closing_balance") or parsed.data.get(
        "intermediate_closing_balance"
    )
    if opening is None or closing is None:
        raise ValueError(f"{path.name}: MT940 statement without :60: and :62: balances")
    currency = _check_currency(opening.amount.currency, f"{path.name} :60:")
    if closing.amount.currency != currency:
        raise ValueError(f"{path.name}: :62: in {closing.amount.currency}, :60: in {currency}")
    reader = StatementReader("mt940", currency, iter(()))
    reader.opening_minor = to_minor(opening.amount.amount, currency, where=f"{path.name} :60:")
    reader.closing_minor = to_minor(closing.amount.amount, currency, where=f"{path.name} :62:")

    def lines() -> Iterator[StatementLine]:
        for line_no, transaction in enumerate(parsed, start=1):
            data: dict[str, Any] = transaction.data
            where = f"{path.name} :61: number {line_no}"
            amount = data.get("amount")
            if amount is None:
                raise ValueError(f"{where}: no amount")
            if amount.currency not in (None, currency):
                raise ValueError(f"{where}: amount in {amount.currency}, statement in {currency}")
            booked_on = data.get("entry_date") or data.get("date")
            if not isinstance(booked_on, date):
                raise ValueError(f"{where}: no date")
            reference = data.get("bank_reference") or data.get("customer_reference")
            if reference is not None and str(reference).strip().upper() == "NONREF":
                reference = None
            yield StatementLine(
                line_no,
                booked_on,
                to_minor(amount.amount, currency, where=f"{where} amount"),
                _reference(None if reference is None else str(reference), where),
                _description(data.get("transaction_details")),
            )

    reader._lines = lines()
    return reader


def read_all(reader: StatementReader) -> list[StatementLine]:
    """Every line (tests and small files only: the job streams)."""
    return list(reader.lines())
