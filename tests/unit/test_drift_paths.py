"""Drift detection walks the payload once against a trie of the known fields; it must say exactly
what the plain definition says: the topmost paths of the payload that are neither known nor at or
under an ignored path."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orderhub.channels import get_channel
from orderhub.channels.base import drift_paths, field_paths


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
