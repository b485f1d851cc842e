"""Deadlines of many concurrent ``asyncio.timeout`` scopes, kept by one watchdog task.

``asyncio.timeout(delay)`` schedules a timer for every scope; under uvloop that creates and
closes a libuv timer handle, about 5 us of CPU per fetch, more than the rest of the fetcher's
own bookkeeping. Here each scope is opened with no deadline (``asyncio.timeout(None)``, no
timer) and registered with its deadline; one task wakes every ``tick_s`` while any scope is
registered and expires the late ones through ``Timeout.reschedule``, so they raise
``TimeoutError`` exactly as a timed scope does, at most ``tick_s`` after their deadline.
"""

from __future__ import annotations

import asyncio


class Deadlines:
    """Expires registered timeout scopes once their deadline has passed (see module docstring)."""

    def __init__(self, tick_s: float) -> None:
        if not tick_s > 0:
            raise ValueError("tick_s must be positive")
        self._tick_s = tick_s
        self._scopes: dict[asyncio.Timeout, float] = {}
        self._watchdog: asyncio.Task[None] | None = None

    def add(self, scope: asyncio.Timeout, after_s: float) -> None:
        """Expire the entered ``scope`` ``after_s`` seconds from now unless discarded first."""
        loop = asyncio.get_running_loop()
        self._scopes[scope] = loop.time() + after_s
        if self._watchdog is None or self._watchdog.done():
            # The watchdog ends when no scope is left (or was stopped): start another.
            self._watchdog = loop.create_task(self._watch(), name="deadlines")

    def discard(self, scope: asyncio.Timeout) -> None:
        """Forget ``scope`` (call before it exits)."""
        self._scopes.pop(scope, None)

    async def close(self) -> None:
        """Stop the watchdog; scopes still registered expire at once."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            # Waits without taking a cancellation aimed at the caller for the watchdog's.
            await asyncio.wait([watchdog])
        self._expire(until=float("inf"))

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._scopes:
            await asyncio.sleep(self._tick_s)
            self._expire(until=loop.time())

    def _expire(self, until: float) -> None:
        now = asyncio.get_running_loop().time()
        late = [scope for scope, deadline in self._scopes.items() if deadline <= until]
        for scope in late:
            del self._scopes[scope]
            try:
                scope.reschedule(now)
            except RuntimeError:
                continue  # the scope already exited without being discarded: nothing to expire
