"""Strategies, the response checker and the store snapshot of the JSON API fuzzing pass.

Every request the fuzz tests send goes through :class:`Fuzzer.send`, which checks what
holds for *any* request (a status documented for that endpoint, never a 5xx from a healthy
store, JSON bodies only, the error shape) and counts requests per store kind and endpoint.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from django.test import AsyncClient
from hypothesis import strategies as st

from prism_storage import storages
from prism_storage.codec import encode_value, validate_key
from prism_storage.exceptions import InvalidKeyError, InvalidValueError
from prism_storage.testing.conformance import HOSTILE_KEYS, INVALID_KEYS
from prism_storage.views import ERROR_STATUS

API = "/prism/api/stores"
CSRF_SECRET = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz"  # 32 characters: a valid CSRF secret

#: The statuses docs/api.md lists for each endpoint, 5xx left out: the stores under the
#: fuzzer are healthy, so no request may end in a server-side error.
STATUSES: dict[str, frozenset[int]] = {
    "stores": frozenset({200, 401, 403, 405}),
    "record GET": frozenset({200, 400, 401, 403, 404}),
    "record PUT": frozenset({200, 201, 400, 401, 403, 404, 413}),
    "record DELETE": frozenset({204, 400, 401, 403, 404}),
    "record other": frozenset({401, 403, 404, 405}),
    "listing": frozenset({200, 400, 401, 403, 404, 405}),
    "search": frozenset({200, 400, 401, 403, 404, 405, 413}),
}

#: Requests sent, per (store kind, endpoint): the size of the pass, printed at the end.
REQUESTS: Counter[tuple[str, str]] = Counter()


def endpoint_of(method: str, url: str, decode=unquote) -> str:  # type: ignore[no-untyped-def]
    path = decode(urlsplit(url).path)
    if path == f"{API}/":
        return "stores"
    if path.endswith("/search") and "/records/" not in path:
        return "search"
    tail = path.split("/records/", 1)[1]
    if tail == "":
        return "listing"
    return f"record {method}" if method in ("GET", "PUT", "DELETE") else "record other"


def strict_json(data: bytes) -> Any:
    """Parse a response body, refusing what is not JSON (NaN, Infinity)."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"the response holds {name}, which is not JSON")

    return json.loads(data, parse_constant=refuse)


class Client(AsyncClient):
    """AsyncClient that decodes the request path as UTF-8 (as ASGI servers do) and can
    send a body without a ``Content-Length`` or with a forged one."""

    content_length: str | None = "truthful"  # or None (no header), or a forged value
    csrf_token: str | None = None  # sent as X-CSRFToken on every request

    def _get_path(self, parsed):  # type: ignore[no-untyped-def]
        return unquote(parsed.path)

    def _base_scope(self, **request):  # type: ignore[no-untyped-def]
        scope = super()._base_scope(**request)
        if self.content_length != "truthful":
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
            if self.content_length is not None:
                headers.append((b"content-length", self.content_length.encode("latin-1")))
            scope["headers"] = headers
        return scope


def session_client(*, csrf: str | None = CSRF_SECRET) -> Client:
    """A client enforcing CSRF like a real server, sending ``csrf`` as its token (the
    cookie always holds :data:`CSRF_SECRET`)."""
    client = Client(enforce_csrf_checks=True)
    client.csrf_token = csrf
    client.cookies["csrftoken"] = CSRF_SECRET
    return client


class Fuzzer:
    """Sends requests for one store kind and checks the invariants of every answer."""

    def __init__(self, kind: str, client: Client) -> None:
        self.kind = kind
        self.client = client

    async def send(
        self,
        method: str,
        url: str,
        body: bytes | str = b"",
        content_type: str = "application/json",
        *,
        client: Client | None = None,
        csrf_page: bool = False,
        **extra: Any,
    ) -> tuple[int, Any]:
        """Send one request; return (status, parsed JSON body or None for 204/CSRF page).

        ``csrf_page``: Django's own HTML 403 page for a CSRF failure is allowed.
        """
        client = client or self.client
        endpoint = endpoint_of(method, url)
        REQUESTS[(self.kind, endpoint)] += 1
        headers = {"X-CSRFToken": client.csrf_token} if client.csrf_token else None
        response = await client.generic(method, url, body, content_type, headers=headers, **extra)
        return response.status_code, check_response(response, endpoint, csrf_page=csrf_page)


def check_response(response: Any, endpoint: str, *, csrf_page: bool = False) -> Any:
    status = response.status_code
    context = (endpoint, status, response.content[:300])
    assert status in STATUSES[endpoint], context
    if status == 204:
        assert response.content == b"", context
        return None
    content_type = response.get("Content-Type", "")
    if csrf_page and status == 403 and content_type.startswith("text/html"):
        assert b"CSRF" in response.content, context
        return None
    assert content_type == "application/json", context
    body = strict_json(response.content)
    if status >= 400:
        assert type(body) is dict and set(body) == {"error"}, context
        error = body["error"]
        assert type(error) is dict and set(error) == {"code", "message"}, context
        assert type(error["message"]) is str and error["message"], context
        assert ERROR_STATUS.get(error["code"]) == status, context
        if status == 405:
            assert response["Allow"], context
    return body


def error_code(body: Any) -> str:
    return "" if body is None or "error" not in body else body["error"]["code"]


# ------------------------------------------------------------------------ store snapshot


async def snapshot(aliases: tuple[str, ...] = ("main", "other")) -> dict[str, dict]:
    """Every record of the given stores, read through the backend API."""
    contents = {}
    for alias in aliases:
        store = storages[alias]
        keys = [key async for key in store.iter_keys()]
        contents[alias] = await store.get_many(keys)
    return contents


def sample_value(store: Any, i: int = 0) -> dict[str, Any]:
    """A value any store takes: search stores get an embedding of their dimensions."""
    value: dict[str, Any] = {"messages": [{"role": "user", "content": f"hello {i}"}], "n": i}
    dimensions = getattr(store, "dimensions", None)
    if store.supports_search and type(dimensions) is int:
        value["embedding"] = [float(i == d) + 0.01 for d in range(dimensions)]
    return value


def key_url(alias: str, key: str) -> str:
    return f"{API}/{alias}/records/" + percent_encode(key).replace(".", "%2E")


def percent_encode(text: str, safe: str = "") -> str:
    """``quote`` that also encodes lone surrogates (as their UTF-8-style bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe)


def key_is_valid(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidKeyError:
        return False
    return True


# ------------------------------------------------------------------ request bodies


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def documented_outcome(body: bytes) -> str | dict[str, Any]:
    """What docs/api.md says a PUT of ``body`` answers: an error code, or the value.

    UTF-8 only (a leading byte order mark is tolerated, as RFC 8259 allows); NaN and
    Infinity are not JSON; the top level must be an object; the value rules are the codec's.
    """
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        return "invalid_value"
    except ValueError:
        return "malformed_json"
    if type(value) is not dict:
        return "invalid_body"
    try:
        encode_value(value)
    except InvalidValueError:
        return "invalid_value"
    return value


@dataclass(frozen=True)
class Body:
    """A request body and what the documentation says it is (``None``: ask the oracle)."""

    data: bytes
    expect: str | None = None


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)

BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"]
NON_JSON_CONSTANTS = ["NaN", "Infinity", "-Infinity", "nan", "inf", "undefined"]


@st.composite
def bodies(draw: st.DrawFn) -> Body:
    """JSON bodies: valid, broken in every documented way, or in no particular way."""
    obj = draw(json_objects)
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "truncated",
                "constant",
                "duplicate",
                "nested",
                "top-level",
                "huge number",
                "bad utf-8",
                "utf-16/32",
                "bom",
                "empty",
                "surrogate escape",
                "trailing",
                "bytes",
            ]
        )
    )
    if kind == "valid":
        return Body(text.encode())
    if kind == "truncated":
        cut = draw(st.integers(0, len(text) - 1))
        return Body(text[:cut].encode(), "malformed_json")
    if kind == "constant":
        constant = draw(st.sampled_from(NON_JSON_CONSTANTS))
        where = draw(st.sampled_from(['{"x": %s}', '{"x": [1, %s]}', '{"a": {"b": %s}}']))
        return Body((where % constant).encode(), "malformed_json")
    if kind == "duplicate":
        first, second = draw(json_values), draw(json_values)
        data = f'{{"a": {json.dumps(first)}, "a": {json.dumps(second)}}}'
        return Body(data.encode())  # JSON leaves duplicates open; the oracle keeps the last
    if kind == "nested":
        depth = draw(st.sampled_from([1, 100, 254, 255, 256, 300, 5_000, 200_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"k": ', "}")]))
        return Body(('{"a": ' + opener * depth + "0" + closer * depth + "}").encode())
    if kind == "top-level":
        value = draw(st.one_of(st.lists(json_values, max_size=3), json_scalars))
        return Body(json.dumps(value).encode(), "invalid_body")
    if kind == "huge number":
        number = draw(
            st.sampled_from(
                [
                    "1e400",
                    "-1e400",
                    "1e-400",
                    "9" * 400,
                    "-" + "9" * 5000,
                    "1" + "0" * 4300,
                    "0." + "0" * 400 + "1",
                    "123456789012345678901234567890",
                ]
            )
        )
        return Body(f'{{"n": {number}}}'.encode())
    if kind == "bad utf-8":
        at = draw(st.integers(0, len(text)))
        garbage = draw(st.sampled_from(BAD_UTF8))
        return Body(
            b'{"s": "' + garbage + b'", "t": ' + text[:at].encode() + b"1}", "malformed_json"
        )
    if kind == "utf-16/32":
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
        return Body(json.dumps({"v": obj}).encode(codec), "malformed_json")
    if kind == "bom":
        return Body(b"\xef\xbb\xbf" + text.encode())
    if kind == "empty":
        return Body(draw(st.sampled_from([b"", b" ", b"\n\t ", b"\x00"])), "malformed_json")
    if kind == "surrogate escape":
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udc80x", "\\ud83d"]))
        where = draw(st.sampled_from(['{"s": "%s"}', '{"%s": 1}', '{"a": ["%s"]}']))
        return Body((where % escape).encode(), "invalid_value")
    if kind == "trailing":
        tail = draw(st.sampled_from(["x", "{}", ",", "]", "\x00", "// c"]))
        return Body((text + tail).encode(), "malformed_json")
    return Body(draw(st.binary(max_size=64)))


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/json; charset=utf-16",
    "APPLICATION/JSON",
    "text/plain",
    "text/html",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzz",
    "multipart/form-data",
    "",
    'application/json; charset="',
    "application/vnd.api+json",
    "*/*",
]
content_types = st.sampled_from(CONTENT_TYPES)


# ------------------------------------------------------------------------ key paths

_any_char = st.characters(codec=None, exclude_categories=())  # surrogates and controls too
PATH_TRICKS = [
    "%2F",
    "%2f",
    "..",
    ".",
    "%2e%2e",
    "%2E%2E%2F",
    "%00",
    "%0a",
    "%0D",
    "%7f",
    "%c2%85",
    "%252e",
    "%252F",
    "%25",
    "%ED%A0%80",
    "%ff",
    "%C0%AE",
    "%E2%80%AE",
    "+",
    "%20",
    ";",
    "%3B",
    "%3F",
    "%23",
    "~",
    "%u002e",
    "\\",
    "%5C",
    "//",
    "/",
    "a",
    "..%2F",
    "%2e/",
]


@dataclass(frozen=True)
class KeyPath:
    """The URL tail after ``records/`` and the key the server must see in it."""

    tail: str

    @property
    def key(self) -> str:
        return unquote(self.tail)  # what an ASGI server (and our Client) decodes


def _encoded(key: str) -> str:
    return percent_encode(key).replace(".", "%2E")


@st.composite
def key_paths(draw: st.DrawFn) -> KeyPath:
    """URL tails for a key: hostile, invalid, tricky or random, encoded right or wrong."""
    source = draw(st.sampled_from(["hostile", "invalid", "tricks", "text", "long", "double"]))
    if source == "hostile":
        return KeyPath(_encoded(draw(st.sampled_from(HOSTILE_KEYS))))
    if source == "invalid":
        key = draw(st.sampled_from([k for _, k in INVALID_KEYS if type(k) is str and k]))
        return KeyPath(_encoded(key))
    if source == "tricks":
        parts = draw(st.lists(st.sampled_from(PATH_TRICKS), min_size=1, max_size=6))
        tail = "".join(parts)
        # An unescaped "?" or "#" would end the path: the tricks hold only escaped ones.
        return KeyPath(tail)
    if source == "text":
        key = draw(st.text(_any_char, min_size=1, max_size=40))
        return KeyPath(percent_encode(key, safe=draw(st.sampled_from(["", "/", "/:@"]))))
    if source == "long":
        length = draw(st.sampled_from([511, 512, 513, 1000, 5000]))
        char = draw(st.sampled_from(["x", "é", "🤖", "%", "/"]))
        return KeyPath(_encoded(char * length))
    key = draw(st.sampled_from(HOSTILE_KEYS[:30]))
    return KeyPath(quote(_encoded(key), safe=""))  # double encoded: "%" arrives as "%25"


# --------------------------------------------------------------------- query strings


def _query_value(draw: st.DrawFn, pool: list[str]) -> str | None:
    choice = draw(st.sampled_from(["absent", "pool", "text", "int"]))
    if choice == "absent":
        return None
    if choice == "pool":
        return draw(st.sampled_from(pool))
    if choice == "int":
        return str(draw(st.integers(-(10**30), 10**30) | st.integers(-2, 10_002)))
    return draw(st.text(_any_char, max_size=30))


LIMITS = [
    "",
    "0",
    "1",
    "-1",
    "10000",
    "10001",
    "1.5",
    "1e3",
    " 5",
    "+5",
    "0x10",
    "5_0",
    "٣",
    "NaN",
    "inf",
    "9" * 5000,
    "99999999999999999999",
    "abc",
    "\x00",
    "1\n",
]
CURSORS = [
    "",
    "\x00",
    "a\nb",
    "zzzz",
    "user/",
    "~" * 600,
    "%",
    "*",
    "-1",
    "0",
    "9" * 50,
    "\ud800",
    "eyJ4IjogMX0=",
    '{"offset": 5}',
    "null",
    "../",
    "\uffff",
]
PREFIXES = [
    "",
    "user/",
    "u",
    "a\nb",
    "\x00",
    "\x7f",
    "x" * 513,
    "%",
    "_",
    "*",
    "\ud800",
    "..",
    "[",
    "\\",
    "'",
    "emoji-🤖",
    "USER/",
]


@dataclass(frozen=True)
class Query:
    prefix: str | None
    cursor: str | None
    limit: str | None
    repeat_limit: str | None = None  # a second ``limit=`` (Django keeps the last)

    def query_string(self) -> str:
        pairs = [
            ("prefix", self.prefix),
            ("cursor", self.cursor),
            ("limit", self.limit),
            ("limit", self.repeat_limit),
        ]
        return "&".join(
            f"{name}={percent_encode(value)}" for name, value in pairs if value is not None
        )

    @property
    def effective_limit(self) -> str | None:
        return self.repeat_limit if self.repeat_limit is not None else self.limit


@st.composite
def queries(draw: st.DrawFn) -> Query:
    repeat = draw(st.sampled_from(LIMITS)) if draw(st.integers(0, 5)) == 0 else None
    return Query(
        _query_value(draw, PREFIXES),
        _query_value(draw, CURSORS),
        _query_value(draw, LIMITS),
        repeat,
    )


def decoded_query_value(value: str) -> str:
    """What Django's QueryDict makes of a value we percent-encoded (invalid UTF-8 -> U+FFFD)."""
    return unquote(percent_encode(value), errors="replace")


def limit_outcome(raw: str | None) -> int | None:
    """The documented page size for a ``limit`` that is a plain decimal integer (or absent);
    ``0`` when it must be refused; ``None`` when the documentation does not say."""
    if raw is None or raw == "":
        return 100
    if re.fullmatch(r"-?[0-9]+", raw) and len(raw) < 100:
        number = int(raw)
        return number if 1 <= number <= 10_000 else 0
    if not any(c.isdigit() for c in raw):
        return 0
    return None


# ------------------------------------------------------------------------ search bodies

_junk = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "$and",
                    "$or",
                    "$eq",
                    "$gt",
                    "$in",
                    "$regex",
                    "kind",
                    "n",
                    "",
                    "a.b",
                    "embedding",
                    "_prism_key",
                    "x" * 70,
                ]
            ),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def finite(x: Any) -> bool:
    try:
        return type(x) in (int, float) and math.isfinite(x)
    except OverflowError:  # an int too large for a float
        return False


@st.composite
def search_bodies(draw: st.DrawFn, dimensions: int) -> dict[str, Any]:
    """Search bodies, as Python data (huge ints, nested junk; serialized by the caller)."""
    body: dict[str, Any] = {}
    shape = draw(st.sampled_from(["good", "length", "nan", "junk", "huge", "text", "none"]))
    floats = st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: abs(x) > 1e-3)
    if shape == "good":
        body["embedding"] = draw(st.lists(floats, min_size=dimensions, max_size=dimensions))
    elif shape == "length":
        size = draw(st.sampled_from([0, 1, dimensions - 1, dimensions + 1, 1536, 100_000]))
        body["embedding"] = [0.5] * size
    elif shape == "nan":
        body["embedding"] = [0.5] * (dimensions - 1) + [math.nan]  # serialized as NaN
    elif shape == "junk":
        body["embedding"] = draw(_junk)
    elif shape == "huge":
        extreme = draw(st.sampled_from([1e308, -1e308, 5e-324, 10**400, -(10**30), 2**64]))
        body["embedding"] = [extreme] + [0.5] * (dimensions - 1)
    elif shape == "text":
        body["text"] = draw(st.one_of(st.text(_any_char, max_size=40), _junk))
    if draw(st.booleans()):
        body["limit"] = draw(
            st.one_of(st.integers(-5, 105), st.sampled_from([True, 1.0, "3", None, 10**30, []]))
        )
    if draw(st.booleans()):
        body["filter"] = draw(
            st.one_of(
                _junk,
                st.sampled_from(
                    [
                        {"n": {"$gt": 1}},
                        {"kind": "note"},
                        {"$or": [{"n": 1}, {"n": {"$in": [2, 3]}}]},
                        {"n": {"$regex": "x"}},
                        {"$not": {"n": 1}},
                        {"n": {"$gt": "x"}},
                        {"n": {}},
                        {"$or": []},
                        {"n": {"$in": []}},
                        {"n": {"$gt": 1e400}},
                        {"embedding": 1},
                        {"n": {"$eq": [1]}},
                        {"n": {"$eq": {"a": 1}}},
                        {"s": "x" * 2000},
                    ]
                ),
            )
        )
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(["colour", "", "Embedding", "topK"]))] = 1
    return body


def search_body_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()  # NaN goes out as the NaN literal
