"""The per-domain job lock: one state-changing operation at a time.

A conflicting call waits up to ``wait`` seconds, then fails with
:class:`~drivers.errors.DomainBusy` naming the job that holds the domain.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from drivers.errors import DomainBusy

DEFAULT_WAIT = 5.0


class JobLock:
    def __init__(self, domain: str) -> None:
        self.domain = domain
        self._lock = asyncio.Lock()
        self.current: str | None = None
        self._since = 0.0

    @asynccontextmanager
    async def job(self, name: str, wait: float = DEFAULT_WAIT) -> AsyncIterator[None]:
        """Hold the domain for ``name``; DomainBusy if it stays taken for ``wait`` s."""
        try:
            await asyncio.wait_for(self._lock.acquire(), wait)
        except TimeoutError:
            held = time.monotonic() - self._since
            raise DomainBusy(
                f"Domain '{self.domain}' is busy with '{self.current}' (for {held:.1f} s); "
                f"'{name}' was not done. Try again when it has finished."
            ) from None
        self.current, self._since = name, time.monotonic()
        try:
            yield
        finally:
            self.current = None
            self._lock.release()

    @property
    def busy(self) -> bool:
        return self._lock.locked()
