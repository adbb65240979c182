"""The file store's thread batching (BatchedThreadRunner): blocking calls run in worker
threads, results reach their callers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from prism_storage.backends.file.threads import MAX_WORKERS, BatchedThreadRunner


def _runner() -> BatchedThreadRunner:
    return BatchedThreadRunner(asyncio.get_running_loop())


async def test_each_caller_gets_its_own_result_off_the_loop_thread():
    runner = _runner()
    loop_thread = threading.get_ident()

    def work(i: int) -> tuple[int, int]:
        time.sleep(0.0005)
        return i * 2, threading.get_ident()

    results = await asyncio.gather(*(runner.run(work, i) for i in range(300)))
    assert [value for value, _ in results] == [i * 2 for i in range(300)]
    assert loop_thread not in {thread for _, thread in results}


async def test_workers_are_bounded_and_all_calls_finish():
    runner = _runner()
    lock = threading.Lock()
    running = 0
    peak = 0

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002)
        with lock:
            running -= 1

    await asyncio.gather(*(runner.run(work) for _ in range(100)))
    assert 1 < peak <= MAX_WORKERS
    assert running == 0


async def test_an_exception_reaches_only_its_caller():
    runner = _runner()

    def work(i: int) -> int:
        if i == 7:
            raise PermissionError(f"call {i}")
        return i

    results = await asyncio.gather(
        *(runner.run(work, i) for i in range(20)), return_exceptions=True
    )
    assert isinstance(results[7], PermissionError) and str(results[7]) == "call 7"
    assert [r for i, r in enumerate(results) if i != 7] == [i for i in range(20) if i != 7]


async def test_a_cancelled_caller_does_not_stop_the_others():
    runner = _runner()
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(5)
        ran.append("slow")
        return "slow"

    slow_future = runner.run(slow)
    await asyncio.to_thread(started.wait, 5)
    slow_future.cancel()
    release.set()
    assert await runner.run(lambda: "next") == "next"
    for _ in range(100):
        if ran:
            break
        await asyncio.sleep(0.01)
    assert ran == ["slow"]  # the call itself still ran to the end, as with to_thread
    assert slow_future.cancelled()


async def test_sequential_calls_keep_working_after_workers_leave():
    runner = _runner()
    for i in range(50):
        assert await runner.run(lambda i=i: i + 1) == i + 1
        if i % 10 == 0:
            await asyncio.sleep(0.005)  # let the worker find the queue empty and leave


def test_a_shut_down_executor_is_an_error_not_a_hang():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        await loop.shutdown_default_executor()
        runner = BatchedThreadRunner(loop)
        with pytest.raises(RuntimeError):
            runner.run(lambda: None)
        assert not runner._queue and runner._workers == 0

    asyncio.run(scenario())
