"""The HTML report of a run, for people (the detail CSV stays the source of truth).

One self-contained page: the run's facts (where it read: the primary or a replica,
and the WAL positions its row records), its summary figures, a bar chart of breaks by
kind (inline SVG, no script, nothing fetched), and the first :data:`DETAIL_ROWS_SHOWN`
detail lines. Rendered with Jinja2, autoescaped: every value from the database is text.

Money is shown as money: in the detail table a column whose name ends in ``_minor`` is
shown without that suffix and each integer in it as ``KES 1,250.00``
(:func:`ledger.money.format_money`), in the currency of the line's ``currency`` column,
else the summary's ``currency``; a value without a known currency stays as it is. The
jobs' extra tables format their own amounts. The CSV and JSON keep minor units.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2

from ledger.core.errors import MalformedRequest
from ledger.money import format_money
from reconciliation.runs import Findings, Run

DETAIL_ROWS_SHOWN = 1000
BAR_WIDTH_MAX_PX = 400
BAR_HEIGHT_PX = 18

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ run.job }} {{ run.business_date }}: {{ run.status }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
td, th { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #146c2e; } .breaks { color: #a4161a; }
</style>
</head>
<body>
<h1>{{ run.job }} &middot; {{ run.business_date }} &middot;
<span class="{{ run.status }}">{{ run.status }}</span></h1>
<table>
<tr><th>run</th><td>{{ run.id }} (attempt {{ run.attempt }})</td></tr>
<tr><th>scope</th><td>{{ run.scope }}</td></tr>
<tr><th>rule version</th><td>{{ run.rule_version }}</td></tr>
<tr><th>input SHA-256</th><td><code>{{ run.input_sha256 }}</code></td></tr>
<tr><th>checked</th><td class="n">{{ run.checked }}</td></tr>
<tr><th>breaks</th><td class="n">{{ run.breaks }}</td></tr>
<tr><th>read from</th><td class="read-source">{{ run.reads.source }}</td></tr>
<tr><th>read LSN</th><td>{% if run.reads.read_lsn %}<code>{{ run.reads.read_lsn }}</code>
{%- else %}none{% endif %}</td></tr>
<tr><th>close LSN</th><td>{% if run.reads.close_lsn %}<code>{{ run.reads.close_lsn }}</code>
{%- else %}none{% endif %}</td></tr>
</table>
{% for title, rows in tables %}
<h2>{{ title }}</h2>
<table>
<tr>{% for cell in rows[0] %}<th>{{ cell }}</th>{% endfor %}</tr>
{% for row in rows[1:] %}<tr>{% for cell in row %}
<td{% if cell is number or cell is money %} class="n"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endfor %}
<h2>Breaks by kind</h2>
{% if bars %}
<svg width="{{ bar_width + 220 }}" height="{{ bars|length * (bar_height + 6) }}"
 role="img" aria-label="breaks by kind">
{% for kind, count, width in bars %}
<text x="0" y="{{ loop.index0 * (bar_height + 6) + bar_height - 4 }}">{{ kind }}</text>
<rect x="140" y="{{ loop.index0 * (bar_height + 6) }}" width="{{ width }}"
 height="{{ bar_height }}" fill="#a4161a"></rect>
<text x="{{ 146 + width }}" y="{{ loop.index0 * (bar_height + 6) + bar_height - 4 }}">
{{ count }}</text>
{% endfor %}
</svg>
{% else %}
<p class="ok">No breaks.</p>
{% endif %}
{% if detail %}
<h2>Detail{% if shown < total %} (first {{ shown }} of {{ total }}; all in detail.csv)
{% endif %}</h2>
<table>
<tr>{% for cell in header %}<th>{{ cell }}</th>{% endfor %}</tr>
{% for row in detail %}<tr>{% for cell in row %}
<td{% if cell is money %} class="n"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}
</body>
</html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_MONEY_TEXT = re.compile(r"[A-Z]{3} -?\d{1,3}(?:,\d{3})*(?:\.\d+)?")
_ENV.tests["money"] = lambda cell: isinstance(cell, str) and bool(_MONEY_TEXT.fullmatch(cell))
MINOR_SUFFIX = "_minor"


def _money(value: object, currency: object) -> object:
    """``value`` as money when it is an integer and ``currency`` a known code."""
    if isinstance(value, bool) or not isinstance(value, int) or not isinstance(currency, str):
        return value
    try:
        return format_money(value, currency)
    except MalformedRequest:
        return value


def money_detail(
    header: tuple[str, ...], lines: list[tuple[object, ...]], currency: object
) -> tuple[tuple[str, ...], list[tuple[object, ...]]]:
    """The detail for people: ``*_minor`` columns as money (see the module docstring)."""
    money = [i for i, name in enumerate(header) if name.endswith(MINOR_SUFFIX)]
    if not money:
        return header, lines
    at = header.index("currency") if "currency" in header else None
    shown_header = tuple(name.removesuffix(MINOR_SUFFIX) for name in header)
    shown: list[tuple[object, ...]] = []
    for line in lines:
        code = line[at] if at is not None and at < len(line) else currency
        shown.append(tuple(_money(v, code) if i in money else v for i, v in enumerate(line)))
    return shown_header, shown


def render(
    run: Run,
    findings: Findings,
    *,
    tables: list[tuple[str, list[tuple[Any, ...]]]] | None = None,
) -> str:
    """The page for ``run``; ``tables`` are extra (title, [header, *rows]) sections."""
    counts: dict[str, int] = {}
    for line in findings.detail:
        counts[str(line[0])] = counts.get(str(line[0]), 0) + 1
    most = max(counts.values(), default=1)
    bars = [
        (kind, count, max(1, count * BAR_WIDTH_MAX_PX // most))
        for kind, count in sorted(counts.items())
    ]
    header, shown = money_detail(
        findings.detail_header,
        findings.detail[:DETAIL_ROWS_SHOWN],
        findings.summary.get("currency"),
    )
    return _ENV.from_string(_TEMPLATE).render(
        run=run,
        tables=tables or [],
        bars=bars,
        bar_width=BAR_WIDTH_MAX_PX,
        bar_height=BAR_HEIGHT_PX,
        header=header,
        detail=shown,
        shown=len(shown),
        total=len(findings.detail),
    )
