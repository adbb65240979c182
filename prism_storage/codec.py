"""Key validation and the JSON codec shared by every backend.

Everything here runs before any I/O, so a bad key or value never reaches a store.

The JSON text is parsed by ``msgspec`` and written by ``orjson`` (``msgspec`` writes what
orjson refuses) when they are installed (the ``fast`` extra), and by the standard library
otherwise. Both engines give the same results: the same values are accepted and refused
with the same errors, integers of any size round-trip, and floats print in a shortest
form that reads back to the same float. See docs/codec.md.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .exceptions import InvalidKeyError, InvalidValueError

try:  # Optional: several times faster than json on large records (the ``fast`` extra).
    import msgspec
except ImportError:  # pragma: no cover - exercised by the tests that switch it off
    msgspec = None  # type: ignore[assignment]

try:  # Optional: writes long strings several times faster than msgspec (the ``fast`` extra).
    import orjson
except ImportError:  # pragma: no cover - exercised by the tests that switch it off
    orjson = None  # type: ignore[assignment]

__all__ = [
    "MAX_DEPTH",
    "MAX_KEY_LENGTH",
    "decode_value",
    "encode_trusted",
    "encode_value",
    "encode_value_bytes",
    "encoded_size",
    "validate_key",
]

MAX_KEY_LENGTH = 512
#: Deeper values are refused: json and several stores recurse once per level.
MAX_DEPTH = 256
#: With ``decimal_exact``, floats at least this large are refused: they are whole numbers,
#: and a store that keeps JSON numbers as decimals hands them back as ints.
DECIMAL_INEXACT_FLOAT = 1e16

# C0 and C1 control characters, plus lone surrogates, which no store can encode as UTF-8.
_FORBIDDEN_KEY_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
)
_decoder = json.JSONDecoder()

#: The fast engine's encoder and decoder, or None to use the standard library. Tests switch
#: this off to prove both engines agree.
_fast_encoder = msgspec.json.Encoder() if msgspec is not None else None
_fast_decoder = msgspec.json.Decoder() if msgspec is not None else None
#: orjson's writer, tried before msgspec's encoder when both are installed; None to skip it.
_fastest_writer = orjson.dumps if orjson is not None and msgspec is not None else None


def validate_key(key: object) -> str:
    """Return ``key`` if it is valid, else raise :class:`InvalidKeyError`."""
    if type(key) is not str:
        raise InvalidKeyError(f"A key must be a str, not {type(key).__name__}.")
    if not key:
        raise InvalidKeyError("A key must not be empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"A key must be at most {MAX_KEY_LENGTH} characters (got {len(key)})."
        )
    bad = _FORBIDDEN_KEY_CHARS.search(key)
    if bad is not None:
        raise InvalidKeyError(
            f"A key must not contain control characters or lone surrogates "
            f"(found {bad.group()!r} at index {bad.start()})."
        )
    return key


def validate_keys(keys: Any) -> list[str]:
    """Validate an iterable of keys (not a bare string), returning them as a list."""
    if isinstance(keys, str | bytes) or not hasattr(keys, "__iter__"):
        raise InvalidKeyError("Expected an iterable of keys, not a single key.")
    return [validate_key(k) for k in keys]


def _child(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}[{key!r}]"


def _find_problem(
    value: Any, decimal_exact: bool = False, max_depth: int = MAX_DEPTH
) -> InvalidValueError | None:
    """Walk ``value`` and describe the first item that is not storable JSON data."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        item, path, depth = stack.pop()
        kind = type(item)
        if item is None or kind is bool or kind is int:
            continue
        if kind is str:
            if "\x00" in item:
                return InvalidValueError(f"{path}: strings must not contain NUL (U+0000).", path)
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return InvalidValueError(f"{path}: string contains a lone surrogate.", path)
            continue
        if kind is float:
            if not math.isfinite(item):
                return InvalidValueError(f"{path}: {item!r} is not a JSON number.", path)
            if decimal_exact and abs(item) >= DECIMAL_INEXACT_FLOAT:
                return InvalidValueError(
                    f"{path}: {item!r} cannot be stored exactly by this store (PostgreSQL "
                    "jsonb keeps numbers as decimals and would return it as an int); store it "
                    "as an int or a string.",
                    path,
                )
            continue
        if kind is dict or kind is list:
            if depth >= max_depth:
                # A reference cycle also ends here: it is infinitely deep.
                return InvalidValueError(
                    f"{path}: nested deeper than {max_depth} levels (or a reference cycle).",
                    path,
                )
            if kind is dict:
                for k, v in item.items():
                    if type(k) is not str:
                        return InvalidValueError(
                            f"{path}: dict keys must be str, not {type(k).__name__} ({k!r}).",
                            path,
                        )
                    if "\x00" in k or not _utf8_encodable(k):
                        return InvalidValueError(
                            f"{path}: dict keys must not contain NUL (U+0000) or lone surrogates.",
                            path,
                        )
                    stack.append((v, _child(path, k), depth + 1))
            else:
                for i, v in enumerate(item):
                    stack.append((v, _child(path, i), depth + 1))
            continue
        return InvalidValueError(
            f"{path}: {kind.__name__} is not JSON data (use dict, list, str, int, float, "
            "bool or None).",
            path,
        )
    return None


#: The scalars that need no check of their own (strings are checked on the JSON text).
_PLAIN_SCALARS = frozenset((str, int, bool, type(None)))


def _plain_json(
    value: dict[str, Any], decimal_exact: bool = False, max_depth: int = MAX_DEPTH
) -> bool:
    """Fast check that ``value`` holds only dicts with str keys, lists, finite floats (below
    DECIMAL_INEXACT_FLOAT with ``decimal_exact``) and other JSON scalars, nested at most
    ``max_depth`` levels. Strings are checked later, on the JSON text."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        container, depth = pop()
        if depth >= max_depth:
            return False
        if type(container) is dict:
            for key in container:
                if type(key) is not str:
                    return False
            children = container.values()
        else:
            children = container
        for child in children:
            kind = type(child)
            if kind in _PLAIN_SCALARS:  # most items: one set lookup
                continue
            if kind is dict or kind is list:
                push((child, depth + 1))
            elif kind is float:
                # NaN and infinity are not JSON; the fast engine would write them as null.
                if child - child != 0.0:
                    return False
                if decimal_exact and not -DECIMAL_INEXACT_FLOAT < child < DECIMAL_INEXACT_FLOAT:
                    return False
            else:
                return False
    return True


def _utf8_encodable(text: str) -> bool:
    """False if ``text`` holds a lone surrogate (the only str UTF-8 cannot encode)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode_value(value: object, *, decimal_exact: bool = False, max_depth: int = MAX_DEPTH) -> str:
    """Validate ``value`` and return its compact JSON text.

    Accepts exactly what round-trips to an equal value: dicts with str keys, lists, str
    (without NUL or lone surrogates), int, finite float, bool and None, nested at most
    ``max_depth`` levels (:data:`MAX_DEPTH` unless the store allows fewer: MariaDB's JSON
    check refuses 32). Anything else raises :class:`InvalidValueError` naming the path of
    the offending item.

    ``decimal_exact`` is for stores that keep JSON numbers as decimals (PostgreSQL's
    ``jsonb``): ``1e23`` would come back as the int 100000000000000000000000, which is not
    equal to the float, so floats of magnitude :data:`DECIMAL_INEXACT_FLOAT` or more are
    refused instead of silently changed.
    """
    if _fast_encoder is not None:
        return encode_value_bytes(value, decimal_exact=decimal_exact, max_depth=max_depth).decode(
            "utf-8"
        )
    record = _as_record(value)
    # The common case costs one cheap walk and C-speed checks of the text; the precise
    # walk, which names the offending item, runs only when one of them objects.
    if _plain_json(record, decimal_exact, max_depth):
        try:
            text = _encoder.encode(record)
        except ValueError:  # pragma: no cover - _plain_json refuses NaN and infinity
            text = None
        # A NUL is escaped as backslash-u0000. Looking for the backslash alone is a memchr,
        # far cheaper than the six-character search on a long text that has none.
        if (
            text is not None
            and ("\\" not in text or "\\u0000" not in text)
            and _utf8_encodable(text)
        ):
            return text
    _raise_problem(value, decimal_exact, max_depth)
    # A string that merely spells a backslash-u0000 escape was a false alarm.
    return _encoder.encode(value)


def encode_value_bytes(
    value: object, *, decimal_exact: bool = False, max_depth: int = MAX_DEPTH
) -> bytes:
    """:func:`encode_value` as UTF-8 bytes, for stores that send bytes (no extra copy with
    the fast engine)."""
    if _fast_encoder is None:
        return encode_value(value, decimal_exact=decimal_exact, max_depth=max_depth).encode("utf-8")
    record = _as_record(value)
    if _plain_json(record, decimal_exact, max_depth):
        try:
            data = _fast_encode(record)
        except UnicodeEncodeError:  # a lone surrogate: the precise walk names it
            data = None
        if data is not None and (b"\\" not in data or b"\\u0000" not in data):
            return data
    _raise_problem(value, decimal_exact, max_depth)
    return _fast_encode(value)


def _fast_encode(value: object) -> bytes:
    """The JSON text of a validated value, written by orjson where it can (on a 1 MB string
    it takes a seventh of msgspec's time), else by msgspec. orjson refuses integers beyond
    64 bits, nesting beyond 254 levels and lone surrogates; msgspec writes the first two
    exactly and raises UnicodeEncodeError for the third."""
    if _fastest_writer is not None:
        try:
            return _fastest_writer(value)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    assert _fast_encoder is not None
    return _fast_encoder.encode(value)


def encode_trusted(value: dict[str, Any]) -> str:
    """The text :func:`encode_value` gives, without its checks: only for a value made of
    parts already validated (a decoded record with validated items added to it)."""
    if _fast_encoder is not None:
        return _fast_encode(value).decode("utf-8")
    return _encoder.encode(value)


def _as_record(value: object) -> dict[str, Any]:
    """``value`` itself if it is a dict; a record's top level must be one."""
    if type(value) is not dict:
        raise InvalidValueError(
            f"$: a value must be a dict of JSON data, not {type(value).__name__}.", "$"
        )
    return value


def _raise_problem(value: Any, decimal_exact: bool, max_depth: int) -> None:
    problem = _find_problem(value, decimal_exact, max_depth)
    if problem is not None:
        raise problem


def decode_value(data: str | bytes) -> dict[str, Any]:
    """Decode JSON text written by :func:`encode_value` into a new dict."""
    value: Any = None
    if _fast_decoder is not None:
        try:
            value = _fast_decoder.decode(data)
        except ValueError:
            # Text the fast engine refuses (invalid UTF-8, an escaped lone surrogate, a
            # number out of float range) gets exactly the standard library's answer below.
            value = None
    if value is None:
        if isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data).decode("utf-8")
        value = _decoder.decode(data)
    if type(value) is not dict:
        raise ValueError("stored record is not a JSON object")
    return value


def encoded_size(value: object) -> int:
    """How many bytes ``value`` takes as a record: the length of its compact UTF-8 JSON,
    as :func:`encode_value` writes it. One definition for every page that shows a size.

    A value no store would accept (a row written to the database by hand, say) is still
    measured, by the standard library's compact encoding, rather than refused: a list
    page must show every row.
    """
    try:
        return len(encode_value_bytes(value))
    except InvalidValueError:
        return len(
            json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
                errors="surrogatepass"
            )
        )
