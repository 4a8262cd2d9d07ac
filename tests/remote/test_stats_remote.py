"""Live statistics through a session daemon (the protocol's stats stream)."""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers
from tests.conftest import require_qemu
from tests.e2e.test_stats import busy_then_idle
from tests.guest import require_guest
from tests.remote.conftest import Session

pytestmark = [pytest.mark.qemu, pytest.mark.guest]


async def test_stats_through_the_daemon(session: Session, short_tmp: Path) -> None:
    require_qemu()
    async with await drivers.open("qemu:///session") as conn:
        assert "stats" in conn.capabilities
        await busy_then_idle(conn, require_guest(), short_tmp / "st2.sock", "st2")
