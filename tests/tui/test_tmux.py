"""The real terminal: tests/tui/tmux_smoke.sh under a private tmux server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import require


def test_tmux_smoke() -> None:
    require(shutil.which("tmux") is not None, "tmux is not installed (apt-get install tmux)")
    script = Path(__file__).with_name("tmux_smoke.sh")
    result = subprocess.run(
        ["bash", str(script), sys.executable],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tmux smoke: all good" in result.stdout
