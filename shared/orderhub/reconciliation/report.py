"""A reconciliation run's verdict, reports and manifest (REC-4), as bytes: the same inputs give the same bytes.

For one business day and one source (a provider's bill or a bank statement) a run has the ledger's rows,
the statement (or none: it never came), and the matcher's result. From them:

- the **verdict**: INCOMPLETE when a side is missing or empty (never green on no data); RECONCILED when
  nothing differs; RECONCILED_WITH_PENDING when every difference is one that resolves itself on a later day
  (a callback delayed, cross-day timing); BREAKS otherwise;
- `report.json` (the figures and every difference, for machines), `differences.csv` (for finance's
  spreadsheet, UTF-8 with a BOM), `report.html` (for people: totals on both sides, the match rate, the
  differences by label as a bar chart, each open difference with its suggested adjustment);
- `manifest.json`: the sha256 of every input and output, so a re-run on the same inputs can be shown to
  give the same bytes.

Nothing here reads a clock: the run's time is given, so reports are reproducible.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from orderhub.money import format_minor
from orderhub.reconciliation.matcher import Difference, Label, LedgerRow, Outcome, Result
from orderhub.reconciliation.statements import Statement


class Verdict(StrEnum):
    RECONCILED = "RECONCILED"
    RECONCILED_WITH_PENDING = "RECONCILED_WITH_PENDING"
    BREAKS = "BREAKS"
    INCOMPLETE = "INCOMPLETE"


# Differences that close themselves when a later day's statement or callback arrives.
SELF_CLOSING = frozenset({Label.CALLBACK_DELAYED, Label.CROSS_DAY_TIMING})

# What finance books to make the two sides agree, by label (a journal line's accounts; amounts are the
# difference's). Chinese chart of accounts, as the ledger's journal uses.
ADJUSTMENTS: Mapping[Label, str] = {
    Label.FEE: "Dr 6603.02 财务费用-支付手续费 / Cr 1012.03 其他货币资金-第三方支付",
    Label.DISCOUNT_NOT_BOOKED: "Dr 6601.08 销售费用-优惠券 / Cr 2203 预收账款",
    Label.REFUND_NOT_SYNCED: "book the refund: Dr 2203 预收账款 / Cr 1012.03 其他货币资金-第三方支付",
    Label.CALLBACK_DELAYED: "none yet: wait for the callback (closes itself); past its age, book the payment",
    Label.CROSS_DAY_TIMING: "none: on the next business day's statement",
    Label.DUPLICATE_NOTIFICATION: "none: the statement lists it twice; ask the provider",
    Label.LOGISTICS_COMPENSATION_PENDING: "Dr 1221 其他应收款-物流赔付 / Cr 6711 营业外支出",
    Label.FX: "Dr/Cr 6603.03 财务费用-汇兑损益 for the rate difference",
    Label.UNCLASSIFIED: "investigate",
}


@dataclass(frozen=True)
class RunInputs:
    business_date: str
    source: str
    ledger: Sequence[LedgerRow]
    statement: Statement | None  # None: it never came
    inputs: Mapping[str, bytes]  # name -> the bytes read (the statement file, the ledger export), for the manifest
    run_at: str  # UTC ISO, given (reports do not read a clock)


def verdict(inputs: RunInputs, result: Result) -> Verdict:
    if inputs.statement is None or not inputs.statement.lines or not inputs.ledger:
        return Verdict.INCOMPLETE
    if not result.differences:
        return Verdict.RECONCILED
    if all(d.label in SELF_CLOSING for d in result.differences):
        return Verdict.RECONCILED_WITH_PENDING
    return Verdict.BREAKS


def _amount(amount: int, currency: str) -> str:
    return format_minor(amount, currency) if currency else str(amount)


def _totals(inputs: RunInputs) -> dict[str, dict[str, int]]:
    ledger: Counter[str] = Counter()
    for row in inputs.ledger:
        ledger[row.currency] += row.amount if row.kind == "payment" else -row.amount
    statement: Counter[str] = Counter()
    for line in inputs.statement.lines if inputs.statement is not None else ():
        statement[line.currency] += -line.amount if line.kind.value in ("refund", "fee") else line.amount
    return {"ledger_net": dict(sorted(ledger.items())), "statement_net": dict(sorted(statement.items()))}


def summary(inputs: RunInputs, result: Result) -> dict:
    lines = len(inputs.statement.lines) if inputs.statement is not None else 0
    matched_lines = sum(len(m.statement) for m in result.matches)
    return {
        "business_date": inputs.business_date, "source": inputs.source, "run_at": inputs.run_at,
        "verdict": verdict(inputs, result).value,
        "ledger_movements": len(inputs.ledger), "statement_lines": lines,
        "matched_movements": sum(len(m.ledger) for m in result.matches), "matched_lines": matched_lines,
        "match_rate": round(matched_lines / lines, 4) if lines else 0.0,
        **_totals(inputs),
        "differences_by_label": dict(sorted(Counter(d.label.value for d in result.differences).items())),
        "differences_by_outcome": dict(sorted(Counter(d.outcome.value for d in result.differences).items())),
    }


def _sides(d: Difference) -> tuple[str, str]:
    """Each side's currency (they differ only for FX)."""
    return d.ledger_currency or d.currency, d.statement_currency or d.currency


def _difference_row(d: Difference) -> dict:
    ledger_currency, statement_currency = _sides(d)
    return {"outcome": d.outcome.value, "label": d.label.value, "order_ref": d.order_ref, "reference": d.reference,
            "ledger_entries": list(d.ledger), "statement_lines": list(d.statement), "currency": d.currency,
            "ledger_currency": ledger_currency, "statement_currency": statement_currency,
            "ledger_amount": d.ledger_amount, "statement_amount": d.statement_amount, "difference": d.amount,
            "suggested_adjustment": ADJUSTMENTS[d.label], "note": d.note}


def _money_texts(d: Difference) -> tuple[str, str, str]:
    """The ledger side, the statement side and the difference, each in its own currency ("—": no difference
    without a rate)."""
    ledger_currency, statement_currency = _sides(d)
    diff = d.amount
    return (_amount(d.ledger_amount, ledger_currency), _amount(d.statement_amount, statement_currency),
            "—" if diff is None else _amount(diff, d.currency))


def _sorted(differences: Sequence[Difference]) -> list[Difference]:
    return sorted(differences, key=lambda d: (d.label.value, d.order_ref, d.reference, d.ledger, d.statement))


def report_json(inputs: RunInputs, result: Result) -> bytes:
    document = {"summary": summary(inputs, result),
                "differences": [_difference_row(d) for d in _sorted(result.differences)],
                "matches": [{"by": m.by, "ledger_entries": list(m.ledger), "statement_lines": list(m.statement),
                             "amount": m.amount, "currency": m.currency}
                            for m in sorted(result.matches, key=lambda m: (m.ledger, m.statement))]}
    return (json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


CSV_COLUMNS = ("outcome", "label", "order_ref", "reference", "currency", "ledger_amount", "statement_amount",
               "difference", "ledger_entries", "statement_lines", "suggested_adjustment", "note")


def differences_csv(result: Result) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for d in _sorted(result.differences):
        row = _difference_row(d)
        row["ledger_amount"], row["statement_amount"], row["difference"] = _money_texts(d)
        row["ledger_entries"] = " ".join(row["ledger_entries"])
        row["statement_lines"] = " ".join(str(n) for n in row["statement_lines"])
        writer.writerow([_cell(str(row[c])) for c in CSV_COLUMNS])
    return "\ufeff".encode() + out.getvalue().encode()  # a BOM: Excel in a Chinese locale reads UTF-8 then


def _cell(text: str) -> str:
    """Never a formula when a spreadsheet opens it."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not text[1:2].isdigit() else text


_VERDICT_COLOUR = {Verdict.RECONCILED: "#1a7f37", Verdict.RECONCILED_WITH_PENDING: "#9a6700",
                   Verdict.BREAKS: "#cf222e", Verdict.INCOMPLETE: "#57606a"}


def report_html(inputs: RunInputs, result: Result) -> bytes:
    s = summary(inputs, result)
    v = Verdict(s["verdict"])
    esc = html.escape
    by_label = Counter(d.label for d in result.differences)
    widest = max(by_label.values(), default=1)
    bars = "".join(
        f'<g transform="translate(0,{i * 26})"><text x="0" y="16">{esc(label.value.replace("_", " "))}</text>'
        f'<rect x="230" y="3" width="{max(2, int(380 * n / widest))}" height="18" rx="3" fill="#0969da"/>'
        f'<text x="{240 + int(380 * n / widest)}" y="16">{n}</text></g>'
        for i, (label, n) in enumerate(sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0].value))))
    chart = (f'<svg role="img" aria-label="differences by label" width="680" height="{max(26, 26 * len(by_label))}"'
             f' font-family="system-ui, sans-serif" font-size="13">{bars}</svg>') if by_label else \
        "<p>No differences.</p>"
    totals = "".join(
        f"<tr><td>{esc(c)}</td><td class=n>{esc(_amount(s['ledger_net'].get(c, 0), c))}</td>"
        f"<td class=n>{esc(_amount(s['statement_net'].get(c, 0), c))}</td></tr>"
        for c in sorted(set(s["ledger_net"]) | set(s["statement_net"])))
    rows = "".join(
        f"<tr><td>{esc(d.label.value.replace('_', ' '))}</td><td>{esc(d.outcome.value.replace('_', ' '))}</td>"
        f"<td>{esc(d.order_ref)}</td><td class=mono>{esc(d.reference)}</td>"
        + "".join(f"<td class=n>{esc(text)}</td>" for text in _money_texts(d))
        + f"<td>{esc(ADJUSTMENTS[d.label])}</td></tr>"
        for d in _sorted(result.differences))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Reconciliation {esc(inputs.business_date)} · {esc(inputs.source)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1f2328; padding: 0 1rem; }}
h1 {{ font-size: 1.5rem; margin-bottom: .25rem; }}
.verdict {{ display: inline-block; padding: .2rem .6rem; border-radius: 1rem; color: #fff;
           background: {_VERDICT_COLOUR[v]}; font-weight: 600; letter-spacing: .02em; }}
.cards {{ display: flex; gap: 1rem; margin: 1.25rem 0; flex-wrap: wrap; }}
.card {{ border: 1px solid #d0d7de; border-radius: .5rem; padding: .75rem 1rem; min-width: 10rem; }}
.card b {{ display: block; font-size: 1.4rem; }}
table {{ border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; font-size: .9rem; }}
th, td {{ border-bottom: 1px solid #d0d7de; padding: .4rem .5rem; text-align: left; vertical-align: top; }}
th {{ background: #f6f8fa; }}
td.n, th.n {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
.mono {{ font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }}
.muted {{ color: #57606a; }}
</style></head><body>
<h1>Reconciliation of {esc(inputs.business_date)} — {esc(inputs.source)}</h1>
<p><span class="verdict">{esc(v.value.replace("_", " "))}</span>
<span class="muted">run at {esc(inputs.run_at)} (UTC)</span></p>
<div class="cards">
<div class="card">match rate<b>{s["match_rate"]:.2%}</b></div>
<div class="card">statement lines<b>{s["statement_lines"]}</b></div>
<div class="card">ledger movements<b>{s["ledger_movements"]}</b></div>
<div class="card">differences<b>{len(result.differences)}</b></div>
</div>
<h2>Totals (net of refunds)</h2>
<table><tr><th>currency</th><th class=n>ledger</th><th class=n>statement</th></tr>{totals}</table>
<h2>Differences by label</h2>
{chart}
<h2>Open differences</h2>
<table><tr><th>label</th><th>outcome</th><th>order</th><th>reference</th><th class=n>ledger</th>
<th class=n>statement</th><th class=n>difference</th><th>suggested adjustment</th></tr>{rows}</table>
</body></html>
"""
    return page.encode()


def manifest(inputs: RunInputs, outputs: Mapping[str, bytes], result: Result) -> bytes:
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    document = {"business_date": inputs.business_date, "source": inputs.source,
                "verdict": verdict(inputs, result).value,
                "inputs": {name: {"sha256": digest(data), "bytes": len(data)}
                           for name, data in sorted(inputs.inputs.items())},
                "outputs": {name: {"sha256": digest(data), "bytes": len(data)}
                            for name, data in sorted(outputs.items())},
                "counts": {"ledger": len(inputs.ledger),
                           "statement": len(inputs.statement.lines) if inputs.statement else 0,
                           "differences": len(result.differences),
                           "missing": sum(1 for d in result.differences if d.outcome in
                                          (Outcome.MISSING_IN_LEDGER, Outcome.MISSING_IN_STATEMENT))}}
    return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()


def reports(inputs: RunInputs, result: Result) -> dict[str, bytes]:
    """Every file of the run, manifest last (it names the others' digests)."""
    outputs = {"report.json": report_json(inputs, result), "differences.csv": differences_csv(result),
               "report.html": report_html(inputs, result)}
    return {**outputs, "manifest.json": manifest(inputs, outputs, result)}
