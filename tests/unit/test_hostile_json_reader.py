"""The one JSON reader every channel uses: json.loads within the limits, a 4xx with a reason beyond them.

Properties over families of text: any value json.dumps writes reads back the same (as Decimal where
it has a fraction); nesting beyond the limit, duplicate keys, lone surrogate escapes, NaN/Infinity
and bytes that are not UTF-8 are refused, however the text is spaced or escaped.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderhub.channels.json_reader import LIMITS, JsonLimits, read_json
from orderhub.channels.rejections import Malformed, TooLarge

KEYS = st.text(max_size=8) | st.sampled_from(['"', "\\", "{", "[", "]", "}", ":", '\\"', " :", "a\"b"])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                    max_leaves=12)
# How the text is spaced: compact, Python's default, pretty-printed (Jackson puts a space before ':').
LAYOUTS = st.sampled_from([{"separators": (",", ":")}, {}, {"indent": 2}, {"separators": (" , ", " : ")}])


def _clean(value) -> bool:
    """What JSON over HTTP may carry: no Infinity, no lone surrogate."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, list):
        return all(_clean(v) for v in value)
    if isinstance(value, dict):
        return all(_clean(k) and _clean(v) for k, v in value.items())
    return True


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=600, derandomize=True)
@given(JSON, LAYOUTS, st.booleans())
def test_what_json_dumps_writes_reads_back_as_json_loads_reads_it(value, layout, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only, **layout)
    if _clean(value):
        expected = json.loads(text, parse_float=Decimal)
        assert read_json(text) == expected
        assert read_json(text.encode()) == expected
    else:
        with pytest.raises(Malformed):
            read_json(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=300, derandomize=True)
@given(st.lists(st.sampled_from(["[]", "{}"]), min_size=1, max_size=60), LAYOUTS,
       st.sampled_from(["0", '"[[{"', '"]]}"', '"\\"]"', '"\\\\"']))
def test_nesting_beyond_the_limit_is_refused_and_within_it_read(shape, layout, filler):
    """Brackets inside strings (escaped quotes too) neither hide nesting nor add to it."""
    text = "1"
    for pair in shape:
        text = f"[{filler}, {text}]" if pair == "[]" else f'{{"k": {text}, "f": {filler}}}'
    value = json.loads(text)
    if _depth(value) > LIMITS.max_depth:
        with pytest.raises(Malformed, match="nested deeper than 32"):
            read_json(text)
    else:
        assert read_json(json.dumps(value, **layout)) == value


def test_a_thousand_levels_deep_is_a_400_not_a_recursion_error():
    for text in ("[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000, "[" * 5000, "[" * 1000 + "]" * 999):
        with pytest.raises(Malformed):
            read_json(text.encode())


@settings(max_examples=300, derandomize=True)
@given(st.dictionaries(KEYS, st.integers() | st.text(max_size=4), min_size=1, max_size=6), st.data(),
       st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " : "), ("\t,", "\t:\r\n")]), st.booleans())
def test_a_key_sent_twice_in_one_object_is_refused_wherever_it_is(obj, data, spacing, ascii_only):
    comma, colon = spacing
    key = data.draw(st.sampled_from(sorted(obj)))
    members = [json.dumps(k, ensure_ascii=ascii_only) + colon + json.dumps(v, ensure_ascii=ascii_only)
               for k, v in obj.items()]
    members.insert(data.draw(st.integers(0, len(members))), json.dumps(key, ensure_ascii=ascii_only) + colon + "0")
    text = '{"outer"' + colon + "[{" + comma.join(members) + "}]}"
    with pytest.raises(Malformed, match="twice"):
        read_json(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\uDBFF x", "a\\udc00", "\\ud83d\\ud83d", "\\ude00\\ud83d"])
def test_a_lone_surrogate_escape_is_refused(escape):
    with pytest.raises(Malformed, match="surrogate"):
        read_json(('{"order_no": "' + escape + '"}').encode())


def test_a_surrogate_pair_is_a_character_and_an_escaped_backslash_is_not_an_escape():
    assert read_json(b'{"name": "\\ud83d\\ude00"}') == {"name": "\U0001f600"}
    assert read_json(b'{"name": "\\\\ud800"}') == {"name": "\\ud800"}


@pytest.mark.parametrize("text", [b'{"amount": NaN}', b'{"amount": Infinity}', b'{"amount": -Infinity}',
                                  '{"a": "é"}'.encode("utf-16"), b"\xef\xbb\xbf{}", b'{"a": "\xff"}',
                                  b'{"a": ' + b"9" * 5000 + b"}"])
def test_text_that_is_not_json_over_http_is_a_400(text):
    with pytest.raises(Malformed):
        read_json(text)


def test_more_members_than_the_limit_is_a_413():
    limits = JsonLimits(max_members=100)
    assert len(read_json(json.dumps({f"f{i}": i for i in range(100)}), limits)) == 100
    with pytest.raises(TooLarge, match="more than 100"):
        read_json(json.dumps({"a": [{f"f{i}": i for i in range(60)}] * 2}), limits)
