"""The codec: the fast acceptance path agrees with the precise walk, on any input."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prism_storage.codec import (
    MAX_DEPTH,
    _find_problem,
    decode_value,
    encode_value,
    encoded_size,
    validate_key,
)
from prism_storage.exceptions import InvalidKeyError, InvalidValueError
from prism_storage.testing.conformance import json_like_values

any_char = st.characters(exclude_categories=())


@settings(max_examples=600, deadline=None)
@given(value=st.dictionaries(st.text(any_char, max_size=8), json_like_values, max_size=6))
def test_fast_path_agrees_with_the_precise_walk(value):
    problem = _find_problem(value)
    if problem is None:
        text = encode_value(value)
        assert json.loads(text) == value
        assert decode_value(text.encode("utf-8")) == value
    else:
        with pytest.raises(InvalidValueError) as caught:
            encode_value(value)
        assert caught.value.path == problem.path


def test_escaped_nul_text_is_not_a_nul():
    value = {"note": "the JSON escape \\u0000 spelled out"}
    assert json.loads(encode_value(value)) == value


def test_depth_limit_is_exact():
    def nest(depth):
        value = {}
        for _ in range(depth):
            value = {"c": value}
        return value

    encode_value(nest(MAX_DEPTH - 1))
    with pytest.raises(InvalidValueError):
        encode_value(nest(MAX_DEPTH + 1))


def test_subclasses_of_json_types_are_refused():
    class Text(str):
        pass

    with pytest.raises(InvalidValueError, match=r"\$\['t'\]"):
        encode_value({"t": Text("x")})


@pytest.mark.parametrize("value", [{"a": 1e16}, {"l": [1, {"x": -6.02e23}]}])
def test_decimal_stores_refuse_huge_floats(value):
    encode_value(value)
    with pytest.raises(InvalidValueError, match="jsonb"):
        encode_value(value, decimal_exact=True)


def test_decimal_check_ignores_strings_with_exponents():
    value = {"text": "1e+16 is big", "n": 12345678901234567890, "f": 9.9e15, "s": math.pi}
    assert encode_value(value, decimal_exact=True) == encode_value(value)


@given(st.text(any_char, max_size=600))
def test_key_rules(key):
    bad = (
        not key
        or len(key) > 512
        or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in key)
    )
    if bad:
        with pytest.raises(InvalidKeyError):
            validate_key(key)
    else:
        assert validate_key(key) == key


def test_encoded_size_is_the_stored_encoding_in_bytes_and_measures_any_row():
    value = {"text": "héllo", "n": [1, 2.5, None]}
    assert encoded_size(value) == len(encode_value(value).encode("utf-8")) == 34
    # Rows a store would refuse (written to the database by hand) are measured all the
    # same, by the standard library's compact JSON: a list page shows every row.
    assert encoded_size([1, 2]) == len(b"[1,2]")
    assert encoded_size({"x": math.nan}) == len(b'{"x":NaN}')
    assert encoded_size({"s": "\ud800"}) == len('{"s":"\ud800"}'.encode(errors="surrogatepass"))
