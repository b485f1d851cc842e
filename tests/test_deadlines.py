"""Deadlines: one watchdog expires many asyncio.timeout scopes, as timed scopes would expire."""

from __future__ import annotations

import asyncio

import pytest

from verifier.deadlines import Deadlines


async def _assert_expires(deadlines: Deadlines, after_s: float) -> None:
    """A scope registered for ``after_s`` that sleeps far longer raises TimeoutError."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as scope:
            deadlines.add(scope, after_s)
            await asyncio.sleep(5)


async def _open_and_discard(deadlines: Deadlines) -> None:
    """A scope registered with a distant deadline and discarded before it exits."""
    async with asyncio.timeout(None) as scope:
        deadlines.add(scope, 10.0)
        await asyncio.sleep(0)
        deadlines.discard(scope)


async def test_a_late_scope_raises_timeout_and_its_task_goes_on() -> None:
    """A scope past its deadline raises TimeoutError (within a tick); the task is not cancelled."""
    deadlines = Deadlines(tick_s=0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await _assert_expires(deadlines, 0.05)
        elapsed = loop.time() - started
        await asyncio.sleep(0)  # still running: the expiry cancelled nothing else
    finally:
        await deadlines.close()
    assert 0.049 <= elapsed < 2.0  # never early (the loop clock counts whole milliseconds)


async def test_scopes_done_in_time_are_left_alone() -> None:
    """A scope discarded before its deadline, and the ones after it, finish undisturbed."""
    deadlines = Deadlines(tick_s=0.01)

    async def work(after_s: float, sleep_s: float) -> str:
        async with asyncio.timeout(None) as scope:
            deadlines.add(scope, after_s)
            try:
                await asyncio.sleep(sleep_s)
            finally:
                deadlines.discard(scope)
        return "done"

    try:
        results = await asyncio.gather(
            work(0.05, 0.01),
            work(0.05, 1.0),
            work(5.0, 0.1),
            return_exceptions=True,
        )
        # A discarded scope is never expired later, even long past its deadline.
        assert await work(0.01, 0.0) == "done"
        await asyncio.sleep(0.05)
    finally:
        await deadlines.close()
    assert results[0] == "done" and results[2] == "done"
    assert isinstance(results[1], TimeoutError)


async def test_close_stops_the_watchdog() -> None:
    """After close no task is left running, and the deadlines can be used again."""
    deadlines = Deadlines(tick_s=0.01)
    await _open_and_discard(deadlines)
    await deadlines.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "deadlines"]
    await _assert_expires(deadlines, 0.02)
    await deadlines.close()


def test_tick_must_be_positive() -> None:
    """A zero or negative tick is refused."""
    with pytest.raises(ValueError, match="tick_s"):
        Deadlines(tick_s=0)


async def test_the_watchdog_ends_when_idle_and_starts_again() -> None:
    """With no scope left the watchdog task ends; the next scope starts one and still expires."""
    deadlines = Deadlines(tick_s=0.01)
    try:
        await _open_and_discard(deadlines)
        await asyncio.sleep(0.05)
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "deadlines"]
        await _assert_expires(deadlines, 0.02)
    finally:
        await deadlines.close()


async def test_a_scope_left_without_discard_does_not_stop_the_others() -> None:
    """A scope that exited still registered is skipped when it is due; later ones still expire."""
    deadlines = Deadlines(tick_s=0.01)
    try:
        async with asyncio.timeout(None) as forgotten:
            deadlines.add(forgotten, 0.01)
            await asyncio.sleep(0)
        await _assert_expires(deadlines, 0.05)
    finally:
        await deadlines.close()


async def test_close_expires_scopes_still_open() -> None:
    """Scopes still registered when the deadlines close raise TimeoutError at once."""
    deadlines = Deadlines(tick_s=0.01)

    async def fetch() -> None:
        async with asyncio.timeout(None) as scope:
            deadlines.add(scope, 60.0)
            await asyncio.sleep(5)

    task = asyncio.create_task(fetch())
    await asyncio.sleep(0.02)
    await deadlines.close()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(task, timeout=2.0)


async def test_close_keeps_a_cancellation_of_its_caller() -> None:
    """A task cancelled while it closes the deadlines ends cancelled."""
    deadlines = Deadlines(tick_s=0.01)
    async with asyncio.timeout(None) as scope:
        deadlines.add(scope, 10.0)
        await asyncio.sleep(0)
        deadlines.discard(scope)
        deadlines.add(scope, 10.0)  # the watchdog keeps running while close waits for it
    closing = asyncio.create_task(deadlines.close())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
