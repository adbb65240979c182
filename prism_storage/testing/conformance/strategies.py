"""Hypothesis strategies for keys and values, valid or not, and the refusal each one earns."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ...backends.base import BaseStorageBackend
from ...codec import MAX_KEY_LENGTH, validate_key
from ...exceptions import InvalidKeyError, InvalidValueError
from .samples import HOSTILE_KEYS

__all__ = ["any_char", "any_keys", "any_text", "expected_refusal", "json_like_values"]

#: Any character at all, lone surrogates and NUL included.
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=40)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats()
    | any_text
)
#: Mostly JSON data, sometimes with items no store can take (tuples, sets, bytes, int keys).
json_like_values = st.recursive(
    _json_scalars | st.binary(max_size=4) | st.frozensets(st.integers(), max_size=2),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(any_text, children, max_size=4)
        | st.tuples(children)
        | st.dictionaries(st.integers(), children, max_size=2)
    ),
    max_leaves=12,
)
#: Strings of any length up to just past the limit, and the hostile keys.
any_keys = st.one_of(
    st.text(any_char, min_size=0, max_size=MAX_KEY_LENGTH + 2),
    st.sampled_from(HOSTILE_KEYS),
)


def expected_refusal(store: BaseStorageBackend, key: Any, value: Any) -> type[Exception] | None:
    """The typed error the store must raise for ``set(key, value)``, or None if it must take it."""
    try:
        validate_key(key)
    except InvalidKeyError:
        return InvalidKeyError
    try:
        # The store's own encoder: some stores refuse more than the codec (huge floats on jsonb).
        store._encode(value)
    except InvalidValueError:
        return InvalidValueError
    return None
