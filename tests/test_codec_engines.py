"""The codec's two JSON engines (msgspec when installed, the standard library otherwise)
give the same answers: the same values accepted and refused with the same errors, the same
decoded records, and each reads what the other wrote. The fast engine is tested twice: with
orjson writing the text (msgspec taking over where orjson refuses) and with msgspec alone."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prism_storage import codec
from prism_storage.exceptions import InvalidValueError

pytest.importorskip("msgspec", reason="the fast engine comes with the 'fast' extra")

any_char = st.characters(exclude_categories=())
scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # far beyond 64 bits too
    | st.floats()  # NaN and infinities included: both engines must refuse them
    | st.text(any_char, max_size=12)  # NUL and lone surrogates included
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(any_char, max_size=6) | st.integers(), children, max_size=4)
    ),
    max_leaves=24,
)
records = st.dictionaries(st.text(any_char, max_size=8), values, max_size=5)


@pytest.fixture(scope="module", autouse=True, params=["orjson writer", "msgspec writer"])
def fast_writer(request: pytest.FixtureRequest) -> Iterator[None]:
    """Runs every test of this module with each writer the fast engine can use."""
    saved = codec._fastest_writer
    if request.param == "orjson writer":
        orjson = pytest.importorskip("orjson", reason="orjson comes with the 'fast' extra")
        codec._fastest_writer = orjson.dumps
    else:
        codec._fastest_writer = None
    try:
        yield
    finally:
        codec._fastest_writer = saved


@contextmanager
def standard_library_engine() -> Iterator[None]:
    saved = codec._fast_encoder, codec._fast_decoder, codec._fastest_writer
    codec._fast_encoder = codec._fast_decoder = codec._fastest_writer = None
    try:
        yield
    finally:
        codec._fast_encoder, codec._fast_decoder, codec._fastest_writer = saved


def outcome(encode: Callable[[Any], Any], value: Any) -> tuple[str, Any]:
    try:
        return "ok", encode(value)
    except InvalidValueError as exc:
        return "refused", (str(exc), exc.path)


def same_data(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down (1 == 1.0 == True in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_data(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same_data, a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


@settings(max_examples=600, deadline=None)
@given(value=records, decimal_exact=st.booleans())
def test_both_engines_accept_and_refuse_the_same_values(
    value: dict[str, Any], decimal_exact: bool
) -> None:
    def encode(value: Any) -> str:
        return codec.encode_value(value, decimal_exact=decimal_exact)

    def encode_bytes(value: Any) -> bytes:
        return codec.encode_value_bytes(value, decimal_exact=decimal_exact)

    fast = outcome(encode, value)
    fast_bytes = outcome(encode_bytes, value)
    with standard_library_engine():
        slow = outcome(encode, value)
    assert fast[0] == slow[0] == fast_bytes[0]
    if fast[0] == "refused":
        assert fast[1] == slow[1] == fast_bytes[1]
        return
    assert fast_bytes[1] == fast[1].encode("utf-8")
    for text in (fast[1], slow[1]):
        assert same_data(json.loads(text), value)
        assert same_data(codec.decode_value(text), value)
        assert same_data(codec.decode_value(text.encode("utf-8")), value)
        with standard_library_engine():
            assert same_data(codec.decode_value(text), value)


@pytest.mark.parametrize(
    "number", [2**64, -(2**64) - 1, 10**40, -(10**100), 2**63, -(2**63), 2**63 - 1]
)
def test_integers_of_any_size_round_trip_on_both_engines(number: int) -> None:
    value = {"n": number, "nested": [number, {"m": number}]}
    fast_text = codec.encode_value(value)
    with standard_library_engine():
        slow_text = codec.encode_value(value)
        assert same_data(codec.decode_value(fast_text), value)
    assert same_data(codec.decode_value(slow_text), value)
    assert same_data(codec.decode_value(fast_text), value)


@settings(max_examples=2000, deadline=None)
@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_floats_print_in_a_form_that_reads_back_exactly(number: float) -> None:
    text = codec.encode_value({"x": number})
    back = codec.decode_value(text)["x"]
    assert same_data(back, number)
    assert same_data(json.loads(text)["x"], number)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused_by_both_engines(number: float) -> None:
    value = {"deep": [{"x": number}]}
    with pytest.raises(InvalidValueError) as fast:
        codec.encode_value(value)
    with standard_library_engine(), pytest.raises(InvalidValueError) as slow:
        codec.encode_value(value)
    assert fast.value.path == slow.value.path == "$['deep'][0]['x']"


@pytest.mark.parametrize("number", [1e16, -1e16, 1.2345678901234568e17, 1e23, 1e308])
def test_both_engines_apply_the_decimal_store_rule(number: float) -> None:
    value = {"x": [number]}
    with pytest.raises(InvalidValueError) as fast:
        codec.encode_value_bytes(value, decimal_exact=True)
    with standard_library_engine(), pytest.raises(InvalidValueError) as slow:
        codec.encode_value(value, decimal_exact=True)
    assert fast.value.path == slow.value.path == "$['x'][0]"
    assert str(fast.value) == str(slow.value)


def test_small_floats_pass_the_decimal_store_rule() -> None:
    value = {"x": 9.999999999999998e15, "y": 1.5e-7, "z": "1e+16 as text"}
    assert codec.encode_value(value, decimal_exact=True) == codec.encode_value(value)
    with standard_library_engine():
        assert codec.encode_value(value, decimal_exact=True) == codec.encode_value(value)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":"\xff"}',  # invalid UTF-8
        b'{"a":1e400}',  # out of float range: json reads infinity
        b'{"a":"\\ud800"}',  # an escaped lone surrogate
        b'{"a":1,"a":2}',  # a repeated key: the last one wins
        b"[1,2]",  # not an object
        b"{",  # truncated
    ],
)
def test_text_the_fast_engine_refuses_gets_the_standard_answer(data: bytes) -> None:
    def answer() -> tuple[str, Any]:
        try:
            return "ok", codec.decode_value(data)
        except ValueError as exc:
            return "error", type(exc)

    fast = answer()
    with standard_library_engine():
        slow = answer()
    assert fast == slow


def test_a_spelled_out_nul_escape_is_accepted_by_both_engines() -> None:
    value = {"note": "the JSON escape \\u0000 spelled out"}
    assert codec.decode_value(codec.encode_value_bytes(value)) == value
    with standard_library_engine():
        assert codec.decode_value(codec.encode_value_bytes(value)) == value


@settings(max_examples=150, deadline=None)
@given(value=records)
def test_trusted_encoding_is_the_checked_encoding_on_both_engines(value: dict[str, Any]) -> None:
    """``encode_trusted`` (for values built from validated parts) writes the very text
    ``encode_value`` writes, with either engine."""
    try:
        checked = codec.encode_value(value)
    except InvalidValueError:
        return  # only valid values are ever trusted
    assert codec.encode_trusted(value) == checked
    with standard_library_engine():
        assert codec.encode_trusted(value) == codec.encode_value(value)


def test_what_orjson_refuses_is_written_by_msgspec() -> None:
    """Integers beyond 64 bits and nesting beyond orjson's 254 levels still encode, exactly."""
    deep: Any = "bottom"
    for _ in range(255):
        deep = [deep]
    for value in ({"n": 2**64, "m": -(2**70)}, {"deep": deep}):
        text = codec.encode_value_bytes(value)
        assert same_data(codec.decode_value(text), value)
        assert same_data(json.loads(text), value)
