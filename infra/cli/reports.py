"""`orderhub drift report` and `orderhub gaps report` (ING-7, ST-1): what the channels send that the hub does not know.

The status mapper counts, per channel (the reporter: `import` for imported files), every
payload field path its module does not know (drift) and every code its mapping table has no
row for (gaps), in the channel-health table (`orderhub.store.health`). These reports print
one table per channel: the path or code, how often it was seen, first and last seen (hub
clock, UTC), an example event id (look it up in the order's timeline), and for drift whether
a field rule of the channel's configuration covers the path now:

- `drop` / `rename -> <path>` / `ignore`: configured; events mapped from now on no longer
  report it (the counter keeps its history);
- `-`: no rule: decide whether the field matters (a module change), is noise (`ignore`) or
  must never be kept (`drop`), then `orderhub replay` the affected events if it mattered.

A gap is fixed in the channel's mapping table (a code change); replaying the events logged
as `unmapped` then applies them.

An event lists its first 32 unknown paths (and codes); beyond them one last row per channel
counts the rest (`+<n> more ...`, its count the events that had more): the counts are true,
the paths not listed are in the events' raw bodies, in the order timeline.
"""

from __future__ import annotations

import argparse
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby
from typing import Any

from infra.cli.common import aws_client, aws_options, physical, stage_config
from orderhub.channels.base import NO_RULES, FieldRules
from orderhub.channels.drift import MAX_LISTED_PER_EVENT
from orderhub.store.health import DRIFT, GAP, HealthEntry


def register(sub: Any) -> None:
    for name, func, text in (("drift", _drift_report, "unknown payload fields per channel, and the rule covering each"),
                             ("gaps", _gaps_report, "codes without a row in their channel's mapping table")):
        group = sub.add_parser(name, help=text).add_subparsers(dest=f"{name}_command", required=True)
        p = group.add_parser("report", help=text)
        p.add_argument("--channel", help="one channel only")
        aws_options(p)
        p.set_defaults(func=func)


def _health(args: argparse.Namespace, config: Any) -> list[HealthEntry]:
    from infra.topology import CHANNEL_HEALTH_TABLE
    from orderhub.store.health import ChannelHealth

    store = ChannelHealth(aws_client(args, "dynamodb"), physical(config, CHANNEL_HEALTH_TABLE))
    return store.entries(channel=args.channel)


def _drift_report(args: argparse.Namespace) -> int:
    import json

    config = stage_config(args)
    ssm = aws_client(args, "ssm")

    def rules_for(channel: str) -> FieldRules:  # the configuration the mapper reads now
        try:
            document = json.loads(ssm.get_parameter(Name=f"{config.config_prefix}/channels/{channel}")
                                  ["Parameter"]["Value"])
        except ssm.exceptions.ParameterNotFound:
            return NO_RULES
        return FieldRules.from_document(document.get("field_rules"))

    print(drift_report(_health(args, config), rules_for))
    return 0


def _gaps_report(args: argparse.Namespace) -> int:
    print(gaps_report(_health(args, stage_config(args))))
    return 0

RulesSource = Callable[[str], FieldRules]


def rule_covering(path: str, rules: FieldRules) -> str:
    """Which configured field rule covers a drift path now ("" when none does)."""

    def covers(rule: str) -> bool:
        return path == rule or path.startswith(rule + ".") or path.startswith(rule + "[]")

    for rule in rules.drop:
        if covers(rule):
            return "drop"
    for new, old in rules.rename.items():
        if covers(new):
            return f"rename -> {old}"
    for rule in rules.ignore:
        if covers(rule):
            return "ignore"
    return ""


def drift_report(entries: Iterable[HealthEntry], rules_for: RulesSource | None = None) -> str:
    drift = [e for e in entries if e.kind == DRIFT]
    if not drift:
        return "no schema drift recorded"
    out = []
    for channel, group in groupby(sorted(drift, key=_row_order), key=lambda e: e.channel):
        rules = rules_for(channel) if rules_for is not None else NO_RULES
        entries = list(group)
        rows = [[e.key, str(e.count), e.first_seen, e.last_seen, e.last_event_id,
                 "-" if e.more else rule_covering(e.key, rules) or "-"] for e in entries]
        out.append(f"channel {channel}: {_counted(entries, 'unknown field path')}")
        out.append(table(["path", "count", "first seen", "last seen", "example event", "rule now"], rows))
    return "\n\n".join(out)


def gaps_report(entries: Iterable[HealthEntry]) -> str:
    gaps = [e for e in entries if e.kind == GAP]
    if not gaps:
        return "no mapping gaps recorded"
    out = []
    for channel, group in groupby(sorted(gaps, key=_row_order), key=lambda e: e.channel):
        entries = list(group)
        rows = [[e.key, str(e.count), e.first_seen, e.last_seen, e.last_event_id] for e in entries]
        out.append(f"channel {channel}: {_counted(entries, 'unmapped code')}")
        out.append(table(["code", "count", "first seen", "last seen", "example event"], rows))
    return "\n\n".join(out)


def _row_order(entry: HealthEntry) -> tuple[str, bool, str]:
    return entry.channel, entry.more > 0, entry.key  # the row of what events did not list goes last


def _counted(entries: Sequence[HealthEntry], what: str) -> str:
    """`3 unknown field paths`; with events that listed only their first ones: `, and 120 more not listed`."""
    listed = sum(1 for e in entries if not e.more)
    more = sum(e.more for e in entries)
    text = f"{listed} {what}{'s' if listed != 1 else ''}"
    return text + (f", and {more} more not listed (an event lists its first {MAX_LISTED_PER_EVENT})" if more else "")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table; column widths count CJK characters as two (paths can be Chinese column names)."""
    widths = [max(_width(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    right = {i for i, h in enumerate(headers) if h == "count"}

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - _width(cell))
            parts.append(pad + cell if i in right else cell + pad)
        return "  " + "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)
