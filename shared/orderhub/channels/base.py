"""What every channel module provides, and the errors ingest turns into 4xx replies.

A channel module is one file in this package exposing `CHANNEL`, an instance of a `Channel`
subclass. Adding a channel is adding a module and its entry in `channels.registry`; nothing
else in the pipeline knows one channel from another.
"""

from __future__ import annotations

import copy
import hmac
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orderhub.models.order import OrderEvent


class ChannelRejection(Exception):
    """A request the hub refuses. `reason` is safe to return to the caller and to log."""

    status_code = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthorized(ChannelRejection):
    status_code = 401


class Malformed(ChannelRejection):
    status_code = 400


class TooLarge(ChannelRejection):
    status_code = 413


@dataclass(frozen=True)
class InboundRequest:
    """A webhook call as the hub saw it. Header names are lower-case."""

    channel: str
    headers: Mapping[str, str]
    body: bytes
    source_ip: str
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FieldRules:
    """Per-channel answers to schema drift (ING-7), from configuration.

    Paths are dotted, `[]` standing for every element of a list (`data.items[].sku`).
    - drop: removed before parsing, so a new field can never leak into what the hub keeps;
    - rename: new path -> the known path it replaces (the value moves before parsing);
    - ignore: known to be there and of no interest: not reported as drift.
    """

    drop: tuple[str, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None) -> FieldRules:
        document = document or {}
        return cls(drop=tuple(document.get("drop", ())), rename=dict(document.get("rename", {})),
                   ignore=tuple(document.get("ignore", ())))


NO_RULES = FieldRules()


@dataclass(frozen=True)
class ChannelSettings:
    """A channel's configuration: SSM document + Secrets Manager secret, read at run time."""

    secrets: Sequence[str]
    timestamp_tolerance_s: int = 300
    allowed_ips: Sequence[str] = ()
    app_key: str = ""  # the public half of the credentials where the platform signs with both
    field_rules: FieldRules = NO_RULES
    options: Mapping[str, Any] = field(default_factory=dict)  # channel-specific, documented per module


@dataclass(frozen=True)
class Reply:
    status_code: int
    body: str
    content_type: str = "application/json"


class Channel:
    """Base for channel modules. Subclasses set the class attributes and implement the hooks."""

    name: str
    max_body_bytes: int = 256 * 1024
    # Headers kept with the raw body so a stored request can be verified and replayed as it came.
    kept_headers: tuple[str, ...] = ()
    # False for channels the hub pulls (taobao, jd, pdd) or reads from files: no webhook route.
    push: bool = True
    # Every field path of the channel's payload the hub knows of (dotted, `[]` for list
    # elements). Anything else in a payload is schema drift: counted and reported (ING-7).
    known_fields: frozenset[str] = frozenset()

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        raise NotImplementedError

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        """Channel payload -> normalised events. Raises Malformed with what is wrong.

        Apply `rules` with `prepare` before reading any field, and put its drift list on
        every event produced.
        """
        raise NotImplementedError

    def accepted(self) -> Reply:
        raise NotImplementedError

    def rejected(self, rejection: ChannelRejection) -> Reply:
        return Reply(rejection.status_code, compact_json({"message": rejection.reason}))

    # Shared by every channel -----------------------------------------------------------

    def check_source_ip(self, request: InboundRequest, settings: ChannelSettings) -> None:
        if not settings.allowed_ips:
            return
        try:
            ip = ipaddress.ip_address(request.source_ip)
        except ValueError as exc:
            raise Unauthorized("source IP not allowed") from exc
        if not any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in settings.allowed_ips):
            raise Unauthorized("source IP not allowed")

    def check_size(self, request: InboundRequest) -> None:
        if len(request.body) > self.max_body_bytes:
            raise TooLarge(f"body larger than {self.max_body_bytes} bytes")

    def prepare(self, payload: Any, rules: FieldRules) -> tuple[Any, tuple[str, ...]]:
        """Apply the field rules, then list the paths the channel's schema does not know."""
        if rules.drop or rules.rename:
            payload = copy.deepcopy(payload)
            for path in rules.drop:
                _pop_path(payload, path.split("."))
            for new, old in rules.rename.items():
                for holder, value in _pop_path(payload, new.split(".")):
                    _put_path(holder, old.split(".")[-1], value)
        if not self.known_fields:
            return payload, ()
        return payload, drift_paths(payload, self.known_fields, rules.ignore)


def drift_paths(payload: Any, known: frozenset[str] | set[str], ignore: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The topmost paths of `payload` that are neither in `known` nor at or under an `ignore` path.

    The same answer as filtering every path of `field_paths(payload)`, found in one walk: an
    ignored path's subtree is all ignored, and under an unknown path nothing can be topmost,
    so the walk goes no deeper there (a full order is hundreds of paths, drift a handful).
    """
    ignore = tuple(ignore)
    exact, prefixes = _ignore_matcher(ignore)
    found: set[str] = set()
    tree = _drift_tree(known, ignore) if isinstance(payload, dict) and isinstance(known, frozenset) else None
    if tree is None:
        _walk_unknown(payload, "", known, exact, prefixes, found)
    else:
        _walk_tree(payload, tree, "", found, known, exact, prefixes)
    if not found:
        return ()
    unknown = sorted(found)
    # Only the topmost unknown path of a new subtree is worth reporting.
    top = [p for p in unknown if not any(p != q and (p.startswith(q + ".") or p.startswith(q + "[]"))
                                         for q in unknown)]
    return tuple(top)


@lru_cache(maxsize=256)
def _ignore_matcher(ignore: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Ignored paths, and the prefixes (`path.`, `path[]`) that put a path under one of them."""
    return frozenset(ignore), tuple(p for i in ignore for p in (i + ".", i + "[]"))


_LIST = object()  # the trie's key for "every element of the list here"
_IGNORED: dict = {}  # the trie's mark of an ignored subtree (compared by identity)
_SCALARS = frozenset({str, int, float, bool, type(None), Decimal})  # JSON leaves: nothing under them


def _tokens(path: str) -> list[Any] | None:
    """`a.b[].c` -> ["a", "b", _LIST, "c"]; None for a path that is not plain names, dots and `[]`."""
    out: list[Any] = []
    for segment in path.split("."):
        name, lists = segment, 0
        while name.endswith("[]"):
            name, lists = name[:-2], lists + 1
        if not name or "[" in name or "]" in name:
            return None
        out.append(name)
        out.extend([_LIST] * lists)
    return out


@lru_cache(maxsize=64)
def _drift_tree(known: frozenset[str], ignore: tuple[str, ...]) -> dict | None:
    """The known paths as a trie of what the walk may enter (a known path, or a list's elements under
    one), ignored subtrees marked `_IGNORED`; unknown paths are simply absent. None when some path is
    not plain, so the string walk answers."""
    full: dict[Any, list[Any]] = {}  # token -> [known, ignored, children]

    def node(path: str) -> list[Any] | None:
        tokens = _tokens(path)
        if tokens is None:
            return None
        entry: list[Any] = [False, False, full]
        for token in tokens:
            entry = entry[2].setdefault(token, [False, False, {}])
        return entry

    for path in known:
        entry = node(path)
        if entry is None:
            return None
        entry[0] = True
    for path in ignore:
        entry = node(path)
        if entry is None:
            return None
        entry[1] = True

    def compiled(children: dict[Any, list[Any]]) -> dict:
        out: dict[Any, Any] = {}
        for token, (is_known, ignored, below) in children.items():
            if ignored:
                out[token] = _IGNORED
            elif is_known or token is _LIST:
                out[token] = compiled(below)
        return out

    return compiled(full)


def _plain_key(key: Any) -> bool:
    return type(key) is str and bool(key) and "." not in key and "[" not in key and "]" not in key


def _walk_tree(value: dict, tree: dict, prefix: str, found: set[str], known: frozenset[str] | set[str],
               exact: frozenset[str], prefixes: tuple[str, ...]) -> None:
    get = tree.get
    for key, child in value.items():
        sub = get(key)
        if sub is None:
            if _plain_key(key):
                found.add(f"{prefix}.{key}" if prefix else key)
            else:  # a key with dots or brackets: the string walk, exactly as field_paths spells it
                _walk_unknown({key: child}, prefix, known, exact, prefixes, found)
        elif sub is _IGNORED or type(child) in _SCALARS:
            continue
        elif isinstance(child, dict):
            _walk_tree(child, sub, f"{prefix}.{key}" if prefix else key, found, known, exact, prefixes)
        elif isinstance(child, list):
            _walk_tree_list(child, sub, f"{prefix}.{key}[]" if prefix else key + "[]", found, known, exact,
                            prefixes)


def _walk_tree_list(value: list, tree: dict, prefix: str, found: set[str], known: frozenset[str] | set[str],
                    exact: frozenset[str], prefixes: tuple[str, ...]) -> None:
    sub = tree.get(_LIST, {})
    if sub is _IGNORED:
        return
    for child in value:
        if isinstance(child, dict):
            _walk_tree(child, sub, prefix, found, known, exact, prefixes)
        elif isinstance(child, list):
            _walk_tree_list(child, sub, prefix + "[]", found, known, exact, prefixes)


def _walk_unknown(value: Any, prefix: str, known: frozenset[str] | set[str], exact: frozenset[str],
                  prefixes: tuple[str, ...], found: set[str]) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if not path:  # an empty top-level key: the paths under it do not start with it
                if path not in exact and path not in known:
                    found.add(path)
                _walk_unknown(child, path, known, exact, prefixes, found)
            elif path in exact or (prefixes and path.startswith(prefixes)):
                continue  # ignored, and so is everything under it
            elif path not in known:
                found.add(path)  # nothing under it can be topmost
            elif isinstance(child, (dict, list)):
                _walk_unknown(child, path, known, exact, prefixes, found)
    elif isinstance(value, list):
        prefix += "[]"
        for child in value:
            if isinstance(child, (dict, list)):
                _walk_unknown(child, prefix, known, exact, prefixes, found)


def field_paths(value: Any, prefix: str = "") -> set[str]:
    """Every dotted path in a JSON value; list elements are `[]`."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            paths |= field_paths(child, path)
    elif isinstance(value, list):
        for child in value:
            paths |= field_paths(child, prefix + "[]")
    return paths


def _pop_path(value: Any, parts: list[str]) -> list[tuple[Any, Any]]:
    """Remove the field at `parts` wherever it occurs; returns (parent, removed value) pairs."""
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        head = head[:-2]
        items = value.get(head) if isinstance(value, dict) else None
        if not isinstance(items, list):
            return []
        if not rest:
            return []
        return [found for item in items for found in _pop_path(item, rest)]
    if not isinstance(value, dict) or head not in value:
        return []
    if not rest:
        return [(value, value.pop(head))]
    return _pop_path(value[head], rest)


def _put_path(holder: Any, key: str, value: Any) -> None:
    if isinstance(holder, dict) and key not in holder:
        holder[key] = value


_YMD_HMS = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})", re.ASCII)


def strptime_ymd_hms(value: str) -> datetime:
    """`datetime.strptime(value, "%Y-%m-%d %H:%M:%S")`, read directly when every field is zero-padded
    (the form platforms send; strptime takes ~10 µs a call); anything else goes to strptime itself."""
    m = _YMD_HMS.fullmatch(value)
    if m is not None:
        try:
            year, month, day, hour, minute, second = map(int, m.groups())
            return datetime(year, month, day, hour, minute, second)
        except ValueError:
            pass  # out of range: strptime says so in its own words
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")


def compact_json(value: object) -> str:
    """Reply bodies as channels expect them: no spaces, UTF-8 left as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def constant_time_match(expected_candidates: Sequence[str], presented: str) -> bool:
    """True if `presented` equals any candidate; each comparison takes constant time."""
    matched = False
    for candidate in expected_candidates:
        matched |= hmac.compare_digest(candidate.encode(), presented.encode())
    return matched
