"""TUI test fixtures: private XDG dirs so no test reads or writes the user's config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote.conftest import Session, session  # noqa: F401 - re-exported fixture


@pytest.fixture(autouse=True)
def _private_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("TZ", "UTC")
    # Seeded test-driver domains started at fixed times, so uptimes in snapshots hold still.
    import drivers.test.driver
    from tui.state import FrozenClock

    monkeypatch.setattr(drivers.test.driver, "clock", lambda: FrozenClock.at_wall)
    yield


__all__ = ["Session"]
