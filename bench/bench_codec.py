"""The codec: prism's encode/decode against the JSON libraries a user would call by hand.

Paths, for a 2.5 KB agent record, a ~1 MB one (a long conversation) and a ~1 MB record
holding one long string (a document or an image as text):

* ``json (stdlib)`` (the baseline): ``json.dumps``/``json.loads`` as a user would call them.
* ``orjson`` and ``msgspec``: the raw libraries (``msgspec.json.Encoder``/``Decoder``).
* ``prism codec``: :func:`prism_storage.codec.encode_value_bytes` / ``decode_value``,
  which validate every value (types, depth, NUL, lone surrogates, finite floats) before
  encoding; with msgspec and orjson installed (the ``fast`` extra: orjson writes, msgspec
  reads).
* ``prism codec, stdlib engine``: the same without msgspec (the fallback).

Each round runs every path once, in an order rotated round by round; the table reports the
median ops/s and the median of the same-round ratios to the baseline (timings on a shared
machine swing between rounds; a ratio measured within one round does not).

Run: ``python -m bench.bench_codec [--quick] [--rounds N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Callable
from typing import Any

from bench.harness import (
    Case,
    Row,
    agent_record,
    big_record,
    measure_cases,
    parser,
    print_table,
    rounds_of,
    save_json,
)
from prism_storage import codec

BENCH = "codec"


def _ops_per_s(run: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        run()
    return count / (time.perf_counter() - started)


def _stdlib_engine(run: Callable[[], object]) -> Callable[[], object]:
    def wrapped() -> object:
        saved = codec._fast_encoder, codec._fast_decoder, codec._fastest_writer
        codec._fast_encoder = codec._fast_decoder = codec._fastest_writer = None
        try:
            return run()
        finally:
            codec._fast_encoder, codec._fast_decoder, codec._fastest_writer = saved

    return wrapped


def paths_for(value: dict[str, Any]) -> dict[str, list[tuple[str, Callable[[], object]]]]:
    import msgspec
    import orjson

    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8")
    encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder()
    return {
        "encode": [
            (
                "json (stdlib)",
                lambda: json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
                    "utf-8"
                ),
            ),
            ("orjson", lambda: orjson.dumps(value)),
            ("msgspec", lambda: encoder.encode(value)),
            ("prism codec", lambda: codec.encode_value_bytes(value)),
            ("prism codec, stdlib engine", _stdlib_engine(lambda: codec.encode_value_bytes(value))),
        ],
        "decode": [
            ("json (stdlib)", lambda: json.loads(data)),
            ("orjson", lambda: orjson.loads(data)),
            ("msgspec", lambda: decoder.decode(data)),
            ("prism codec", lambda: codec.decode_value(data)),
            ("prism codec, stdlib engine", _stdlib_engine(lambda: codec.decode_value(data))),
        ],
    }


def cases_for(label: str, value: dict[str, Any], count: int) -> list[Case]:
    """One case per operation; each measure runs its path ``count`` times."""
    return [
        Case(
            BENCH,
            f"{operation} {label}",
            [(name, functools.partial(_ops_per_s, run, count)) for name, run in paths],
        )
        for operation, paths in paths_for(value).items()
    ]


async def main(argv: list[str] | None = None) -> list[Row]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    rounds = rounds_of(args)
    cases: list[Case] = []
    for label, value, count in (
        ("2.5 KB", agent_record(0, size=2500), 2000),
        ("~1 MB conversation", agent_record(0, size=1024 * 1024), 20),
        ("~1 MB string", big_record(0), 50),
    ):
        if args.quick:
            count = max(count // 10, 2)
        cases += cases_for(label, value, count)
    rows = await measure_cases(cases, rounds)
    print_table(rows, f"JSON codec, ops/s (median of {rounds} rotated rounds)")
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
