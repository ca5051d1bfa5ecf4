"""Drift detection walks the payload once against a trie of the known fields; it must say exactly
what the plain definition says: the topmost paths of the payload that are neither known nor at or
under an ignored path, whatever the keys (long, odd, Unicode, lone surrogates) and however many.
An event lists the first few of them and counts the rest. Its cost (linear in the payload) is
measured in bench/, not here."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orderhub.channels import get_channel
from orderhub.channels.base import drift_paths, field_paths
from orderhub.channels.drift import MAX_LISTED_PER_EVENT, MAX_TEXT_CHARS, unknown_paths
from orderhub.stored_text import storable_text


def by_definition(payload, known, ignore) -> tuple[str, ...]:
    unknown = sorted(p for p in field_paths(payload) if p not in known and p not in ignore
                     and not any(p.startswith(i + ".") or p.startswith(i + "[]") for i in ignore))
    return tuple(p for p in unknown if not any(p != q and (p.startswith(q + ".") or p.startswith(q + "[]"))
                                               for q in unknown))


KEYS = st.sampled_from(["id", "order", "items", "sku", "price", "data", "a.b", "x[]", "", "name", "order_id_suffix"])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
                    max_leaves=20)
PATHS = st.lists(st.sampled_from(["id", "order", "order.id", "items", "items[]", "items[].sku", "items[].price",
                                  "data", "data.order", "data.items[].sku", "a.b", "name"]), max_size=8)


@settings(max_examples=500, deadline=None)
@given(payload=st.dictionaries(KEYS, JSON, max_size=5), known=PATHS, ignore=PATHS)
def test_the_walk_agrees_with_the_definition(payload, known, ignore):
    assert drift_paths(payload, frozenset(known), tuple(ignore)) == by_definition(payload, set(known), set(ignore))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_walk_agrees_on_real_channel_schemas(data):
    channel = get_channel(data.draw(st.sampled_from(["shopify", "douyin", "youzan", "woocommerce", "taobao", "pdd"])))
    known = sorted(channel.known_fields)
    ignore = tuple(data.draw(st.lists(st.sampled_from(known), max_size=3)))
    paths = data.draw(st.lists(st.sampled_from(known + ["order_id_suffix", "line_items[].new_field"]), max_size=12))
    payload: dict = {}
    for path in paths:  # a payload holding these paths (lists of one element)
        node = payload
        parts = path.replace("[]", ".[]").split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "[]":
                continue
            is_list = i + 1 < len(parts) and parts[i + 1] == "[]"
            if last:
                node.setdefault(part, "v")
                break
            child = node.setdefault(part, [{}] if is_list else {})
            if isinstance(child, list):
                child = child[0] if child and isinstance(child[0], dict) else None
            if not isinstance(child, dict):
                break
            node = child
    assert drift_paths(payload, frozenset(known), ignore) == by_definition(payload, set(known), set(ignore))


# Keys a hostile or careless channel sends: separators where paths put them, an empty key, Unicode,
# lone surrogates (JSON can spell "\ud800"), and names of a thousand characters and more.
ODD_CHARS = st.sampled_from([".", "[", "]", "[]", "a", "b", "é", "中", "\ud800", "\udfff", "\x00", " "])
ODD_KEYS = (KEYS
            | st.lists(ODD_CHARS, max_size=6).map("".join)
            | st.tuples(ODD_CHARS, st.integers(1_000, 3_000)).map(lambda t: t[0] * t[1])
            | st.tuples(st.sampled_from(["order", "a", "items"]), st.sampled_from([".", "[]", ".b."]),
                        st.text(max_size=4)).map("".join))
ODD_JSON = st.recursive(st.none() | st.integers() | st.text(max_size=2),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_KEYS, inner, max_size=5),
                        max_leaves=30)


def listed(paths: tuple[str, ...]) -> tuple[str, ...]:
    """What an event lists, by its documented contract: the first MAX_LISTED_PER_EVENT paths, then one note."""
    more = len(paths) - MAX_LISTED_PER_EVENT
    shown = tuple(storable_text(p, MAX_TEXT_CHARS) for p in paths[:MAX_LISTED_PER_EVENT])
    return shown + ((f"+{more} more unknown field paths",) if more > 0 else ())


@settings(max_examples=200, deadline=None)
@given(payload=st.dictionaries(ODD_KEYS, ODD_JSON, max_size=8), known=PATHS, ignore=PATHS)
def test_the_walk_agrees_with_the_definition_on_long_and_odd_keys(payload, known, ignore):
    expected = by_definition(payload, set(known), set(ignore))
    assert unknown_paths(payload, frozenset(known), tuple(ignore)) == expected
    assert unknown_paths(payload, set(known), tuple(ignore)) == expected  # the string walk
    assert drift_paths(payload, frozenset(known), tuple(ignore)) == listed(expected)


@settings(max_examples=30, deadline=None)
@given(count=st.integers(0, 5_000), nested=st.integers(0, 200), stem=ODD_KEYS, data=st.data())
def test_an_event_lists_a_bounded_drift_that_counts_every_unknown_path(count, nested, stem, data):
    # Thousands of unknown keys, beside and under known ones, some of them also under an unknown
    # key that holds dots (`x` and `x.0`: only `x` is topmost).
    known = frozenset(["id", "order", "order.id", "items", "items[]", "items[].sku"])
    payload: dict = {"id": 1, "order": {"id": 2, **{f"{stem}{i}": i for i in range(nested)}},
                     "items": [{"sku": "s", **{f"n{i}": i for i in range(nested)}}]}
    payload.update({f"{stem}x{i}": i for i in range(count)})
    payload.update({f"{stem}x{i}.0": i for i in range(0, count, 7)})
    extra = data.draw(st.dictionaries(ODD_KEYS, ODD_JSON, max_size=4))
    payload.update(extra)
    every = unknown_paths(payload, known)
    found = set(every)
    # An odd extra key the schema does not know may hold some of them (a known one, say `items` made
    # null, holds nothing: what looks to be under it is still topmost).
    parents = tuple(k + sep for k in extra if k not in known for sep in (".", "[]"))
    assert {f"{stem}x{i}" for i in range(count)} - found == {
        f"{stem}x{i}" for i in range(count) if parents and f"{stem}x{i}".startswith(parents)}
    assert not any(f"{stem}x{i}.0" in found for i in range(0, count, 7))
    drift = drift_paths(payload, known)
    assert drift == listed(every)
    assert len(drift) <= MAX_LISTED_PER_EVENT + 1
    for path in drift:  # storable: bounded, and UTF-8 (boto3 cannot send a lone surrogate)
        assert len(path) <= MAX_TEXT_CHARS
        path.encode()
    if len(every) > MAX_LISTED_PER_EVENT:
        assert drift[-1] == f"+{len(every) - MAX_LISTED_PER_EVENT} more unknown field paths"
