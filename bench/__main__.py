"""Run the benchmarks: ``python -m bench [NAME ...] [--quick] [--json DIR] [-- MODULE-ARGS]``.

With no NAME every ``bench/bench_*.py`` runs; ``python -m bench file orm`` runs
``bench_file`` and ``bench_orm``. Each module runs in its own process, one after another,
so that each owns its setup (Django settings, servers, event loop, temp directories) and
one failing module does not stop the others. A summary of exit codes and times closes the
run; the exit code is non-zero when any module failed.

How every figure is measured (``bench.harness``; timings on a shared machine swing by
20-40% from one round to the next, so no figure is a best-of and no ratio compares
figures taken at different times):

* a *case* (say "set 2.5 KB, 64 tasks") lists its *paths*, the baseline first: the raw
  client a careful user would call by hand, encoding JSON with the standard library;
* a *round* measures every path of every case once; within a round a case's paths run
  back to back, in their order rotated by one each round (round r starts at path r), so
  no path is always first, cold, or after the same neighbour, and a burst of load from
  other processes lands on every path of that round;
* a path's ops/s (or, for latency cases, p50 ms) is the median over the rounds;
* its ratio is the median over rounds of (path / baseline) measured in the *same* round,
  with the lowest and highest of those ratios after it, e.g. ``1.42x (1.10..1.65)``;
  > 1 is better than the baseline, for latencies too (baseline ms / path ms);
* where JSON is encoded by the raw client, a second raw path does the same with
  ``orjson.dumps``/``orjson.loads``, and the table adds a "vs raw+orjson" column: the
  same-round ratio against that path (the main ratio stays against the stdlib baseline);
* ``--rounds N`` sets the rounds (default 5; 2 with ``--quick``, so the order rotates);
  the table's heading names the rounds, and the machine is the one it ran on.

The convention every bench module follows (see also docs/bench.md):

* it is ``bench/bench_<name>.py`` and runs on its own as ``python -m bench.bench_<name>``;
* it builds its command line with :func:`bench.harness.parser`, so it accepts ``--quick``
  (a smoke run of seconds), ``--rounds N`` and ``--json FILE`` (the rows as JSON), plus
  options of its own;
* it exposes ``async def main(argv: list[str] | None = None) -> list[Row]``, which measures
  through :func:`bench.harness.measure_cases` (or :func:`bench.harness.run_rounds`),
  prints its table(s) with :func:`bench.harness.print_table` and returns the rows; the
  module ends with ``if __name__ == "__main__": asyncio.run(main())``;
* it starts and stops what it needs itself (a private server on a free loopback port, a
  scratch database, a temp directory) and leaves nothing running; when a service it needs
  is missing it says so and exits non-zero;
* its numbers never feed a pass/fail test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
PREFIX = "bench_"


def available() -> list[str]:
    """The short names (``file`` for ``bench_file.py``) of the bench modules present."""
    return sorted(p.stem[len(PREFIX) :] for p in BENCH_DIR.glob(f"{PREFIX}*.py"))


def _short_name(name: str) -> str:
    name = name.removesuffix(".py")
    return name[len(PREFIX) :] if name.startswith(PREFIX) else name


def _arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the benchmarks (each bench/bench_*.py in its own process).",
        epilog="Arguments after -- are passed to every module run.",
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"modules to run (default: all of {', '.join(available()) or 'none'})",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run of every module")
    p.add_argument("--json", metavar="DIR", help="write each module's rows to DIR/<name>.json")
    p.add_argument(
        "--results",
        metavar="FILE",
        help="also write every module's tables to FILE (markdown), headed by the machine",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="stop a module that runs longer (default 3600)",
    )
    p.add_argument("--list", action="store_true", help="list the modules and exit")
    return p.parse_args(argv), passthrough


def run_module(
    name: str, args: argparse.Namespace, passthrough: list[str], results: IO[str] | None = None
) -> int:
    """Run ``bench.bench_<name>`` in a child process; its output goes straight through,
    and to ``results`` too when given."""
    command = [sys.executable, "-m", f"bench.{PREFIX}{name}"]
    if args.quick:
        command.append("--quick")
    if args.json:
        command += ["--json", os.path.join(args.json, f"{name}.json")]
    command += passthrough
    heading = f"\n# bench {name}: {' '.join(command[1:])}\n"
    print(heading, flush=True)
    if results is None:
        try:
            return subprocess.run(command, cwd=BENCH_DIR.parent, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            print(f"\n# bench {name}: stopped after {args.timeout:.0f} s", flush=True)
            return 124
    results.write(f"\n## {name}\n\n`python {' '.join(command[1:])}`\n")
    code = tee(command, results, args.timeout)
    if code == 124:
        print(f"\n# bench {name}: stopped after {args.timeout:.0f} s", flush=True)
    results.flush()
    return code


def tee(command: list[str], results: IO[str], timeout: float) -> int:
    """Run ``command``, copying its output line by line to stdout and to ``results``;
    124 when it runs past ``timeout`` seconds (it is killed then)."""
    with subprocess.Popen(
        command,
        cwd=BENCH_DIR.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as child:
        watchdog = threading.Timer(timeout, child.kill)
        watchdog.start()
        try:
            assert child.stdout is not None
            for line in child.stdout:
                sys.stdout.write(line)
                results.write(line)
            code = child.wait()
        finally:
            expired = not watchdog.is_alive()
            watchdog.cancel()
        return 124 if expired and code != 0 else code


def machine() -> str:
    """One line naming the machine a results file was measured on."""
    cores = os.cpu_count() or 0
    memory = ""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
        memory = f", {gib:.0f} GiB"
    return (
        f"{platform.processor() or platform.machine()}, {cores} cores{memory}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    args, passthrough = _arguments(sys.argv[1:] if argv is None else argv)
    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    chosen = [_short_name(n) for n in args.names] or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(
            f"Unknown bench module(s): {', '.join(unknown)}. Available: {', '.join(names)}.",
            file=sys.stderr,
        )
        return 2
    results: list[tuple[str, int, float]] = []
    with contextlib.ExitStack() as stack:
        page = None
        if args.results:
            page = stack.enter_context(open(args.results, "w", encoding="utf-8"))
            command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
            page.write(
                f"# Benchmark results\n\nWritten by `{command}` on "
                f"{datetime.date.today().isoformat()}; machine: {machine()}. Each table's "
                "heading says how many rotated rounds it took; how a figure is measured is "
                "in [bench.md](bench.md).\n"
            )
        for name in chosen:
            started = time.perf_counter()
            code = run_module(name, args, passthrough, page)
            results.append((name, code, time.perf_counter() - started))
    summary = ["\n## bench run summary\n", "| module | result | seconds |", "|---|---|---:|"]
    for name, code, seconds in results:
        outcome = "ok" if code == 0 else f"FAILED (exit {code})"
        summary.append(f"| {name} | {outcome} | {seconds:.0f} |")
    print("\n".join(summary))
    if args.results:
        with open(args.results, "a", encoding="utf-8") as page:
            page.write("\n".join(summary) + "\n")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
