"""Schema drift (ING-7): the paths of a channel payload that the channel's schema does not know.

`unknown_paths` walks the payload once against a trie of the known fields and keeps the topmost
paths with one pass over their separators (checked against the plain definition, `field_paths`,
by hypothesis in tests/unit/test_drift_paths.py): its cost is linear in the payload, whatever the
number or length of the keys. `drift_paths` is what an event carries and the channel-health
table records: the first `MAX_LISTED_PER_EVENT` of them, bounded in length, and a note of how
many more there were (`orderhub.store.health` records them).
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from decimal import Decimal
from functools import lru_cache
from typing import Any

from orderhub.stored_text import storable_text

MAX_LISTED_PER_EVENT = 32  # paths (and codes) one event lists; a platform's new release adds a handful
MAX_TEXT_CHARS = 200  # a path or code as stored: room for any real one, bounded for a hostile one
MORE_PATHS_NOTE = " more unknown field paths"  # the last listed item "+<n> more unknown field paths"


def drift_paths(payload: Any, known: frozenset[str] | set[str], ignore: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The drift an event carries: `unknown_paths`, the first few listed, the rest counted."""
    return listed_with_note(_unknown(payload, known, ignore))


def listed_with_note(paths: Collection[str]) -> tuple[str, ...]:
    """What an event carries as drift: the first `MAX_LISTED_PER_EVENT` paths in sorted order,
    storable, then (only when there were more) one note `+<n> more unknown field paths`, which
    the store reads by its place: a list longer than the cap ends with it."""
    first = sorted(paths) if len(paths) <= MAX_LISTED_PER_EVENT else heapq.nsmallest(MAX_LISTED_PER_EVENT, paths)
    listed = tuple(storable_text(p, MAX_TEXT_CHARS) for p in first)
    more = len(paths) - MAX_LISTED_PER_EVENT
    return listed + (f"+{more}{MORE_PATHS_NOTE}",) if more > 0 else listed


def unknown_paths(payload: Any, known: frozenset[str] | set[str], ignore: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The topmost paths of `payload` that are neither in `known` nor at or under an `ignore` path, sorted.

    The same answer as filtering every path of `field_paths(payload)`, found in one walk: an
    ignored path's subtree is all ignored, and under an unknown path nothing can be topmost,
    so the walk goes no deeper there (a full order is hundreds of paths, drift a handful).
    """
    return tuple(sorted(_unknown(payload, known, ignore)))


def _unknown(payload: Any, known: frozenset[str] | set[str], ignore: tuple[str, ...]) -> set[str]:
    ignore = tuple(ignore)
    exact, prefixes = _ignore_matcher(ignore)
    found: set[str] = set()
    tree = _drift_tree(known, ignore) if isinstance(payload, dict) and isinstance(known, frozenset) else None
    if tree is None:
        _walk_unknown(payload, "", known, exact, prefixes, found)
        return _topmost(found)
    # The tree walk enters known paths only, so what it finds is topmost; a key holding dots or
    # brackets is walked as a string (`odd`), and only then can one found path sit under another.
    odd: set[str] = set()
    _walk_tree(payload, tree, "", found, odd, known, exact, prefixes)
    return _topmost(found | odd) if odd else found


def _topmost(paths: set[str]) -> set[str]:
    """The paths not under another one (`q.…` or `q[]…` for some other q in `paths`).

    A path's candidate parents are its prefixes that end where a `.` or `[]` starts; the paths
    are cut there into pieces and put in a trie of pieces, so each path is looked at once, piece
    by piece (pairwise checks were quadratic: 4,000 unknown keys took seconds). Only keys that
    hold dots or brackets can make a found path sit under another.
    """
    if all("." not in p and "[" not in p for p in paths):
        return paths
    end = object()  # marks a trie node that is a whole path
    trie: dict[Any, Any] = {}
    cut_paths = [(p, _pieces(p)) for p in paths]
    for _, pieces in cut_paths:
        node = trie
        for piece in pieces:
            node = node.setdefault(piece, {})
        node[end] = True
    top = set()
    for path, pieces in cut_paths:
        node = trie
        for piece in pieces[:-1]:  # every proper prefix that ends at a separator
            node = node[piece]
            if end in node:
                break
        else:
            top.add(path)
    return top


def _pieces(path: str) -> list[str]:
    """`path` cut before every `.` and every `[]`; the prefixes ending at a cut are its candidate parents.

    A cut at 0 gives an empty first piece: the empty path (an empty top-level key) is a parent too.
    A parent's own pieces are the path's first ones: a `[` ending a parent cannot pair with a `]`
    of the path, which would then go on with `]`, not a separator."""
    if "[" not in path:  # the common case, in C
        first, *rest = path.split(".")
        return [first, *("." + part for part in rest)]
    bounds = [0, *(i for i, c in enumerate(path) if c == "." or (c == "[" and path.startswith("]", i + 1))),
              len(path)]
    return [path[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


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


def _walk_tree(value: dict, tree: dict, prefix: str, found: set[str], odd: set[str],
               known: frozenset[str] | set[str], exact: frozenset[str], prefixes: tuple[str, ...]) -> None:
    # The tree holds exactly the keys the walk may enter. Whether every key is one of them is
    # told in C; then the loop looks only at the values it might enter (a JSON object is
    # mostly scalars: a Shopify order is ~330 keys in ~60 objects).
    if not value.keys() <= tree.keys():
        _walk_unknown_keys(value, tree, prefix, found, odd, known, exact, prefixes)
        return
    for key, child in value.items():
        if type(child) in _SCALARS:
            continue
        sub = tree[key]
        if sub is _IGNORED:
            continue
        if isinstance(child, dict):
            _walk_tree(child, sub, f"{prefix}.{key}" if prefix else key, found, odd, known, exact, prefixes)
        elif isinstance(child, list):
            _walk_tree_list(child, sub, f"{prefix}.{key}[]" if prefix else key + "[]", found, odd, known,
                            exact, prefixes)


def _walk_unknown_keys(value: dict, tree: dict, prefix: str, found: set[str], odd: set[str],
                       known: frozenset[str] | set[str], exact: frozenset[str], prefixes: tuple[str, ...]) -> None:
    """`_walk_tree` of an object holding keys the tree does not know (thousands, from a hostile
    sender: the keys are sorted out by set operations and comprehensions, no call per key)."""
    unknown = value.keys() - tree.keys()
    try:  # JSON keys are text; one C search tells whether any holds a separator
        joined = "".join(unknown)
        plain: Any = unknown if "." not in joined and "[" not in joined and "]" not in joined and "" not in unknown \
            else None
    except TypeError:
        plain = None
    if plain is None:
        plain = [k for k in unknown if type(k) is str and k and "." not in k and "[" not in k and "]" not in k]
        for key in unknown.difference(plain):  # dots or brackets: the string walk, as field_paths spells it
            _walk_unknown({key: value[key]}, prefix, known, exact, prefixes, odd)
    found.update([f"{prefix}.{k}" for k in plain] if prefix else plain)
    for key in value.keys() & tree.keys():
        child = value[key]
        if type(child) in _SCALARS:
            continue
        sub = tree[key]
        if sub is _IGNORED:
            continue
        if isinstance(child, dict):
            _walk_tree(child, sub, f"{prefix}.{key}" if prefix else key, found, odd, known, exact, prefixes)
        elif isinstance(child, list):
            _walk_tree_list(child, sub, f"{prefix}.{key}[]" if prefix else key + "[]", found, odd, known,
                            exact, prefixes)


def _walk_tree_list(value: list, tree: dict, prefix: str, found: set[str], odd: set[str],
                    known: frozenset[str] | set[str], exact: frozenset[str], prefixes: tuple[str, ...]) -> None:
    sub = tree.get(_LIST, {})
    if sub is _IGNORED:
        return
    for child in value:
        if isinstance(child, dict):
            _walk_tree(child, sub, prefix, found, odd, known, exact, prefixes)
        elif isinstance(child, list):
            _walk_tree_list(child, sub, prefix + "[]", found, odd, known, exact, prefixes)


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
