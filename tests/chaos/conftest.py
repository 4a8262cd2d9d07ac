"""The chaos tier: every test under tests/chaos carries the ``chaos`` marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import conn, embed_root  # noqa: F401 - re-exported fixtures
from tests.remote.conftest import session  # noqa: F401 - re-exported fixture
from tests.remote.test_ssh_netns import hosts  # noqa: F401 - re-exported fixture

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.chaos)
