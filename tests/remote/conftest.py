"""Fixtures for daemon tests: a private session environment whose processes are always ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import kill_root_processes


@dataclass
class Session:
    """A session daemon's world: XDG dirs under one short temp dir."""

    base: Path

    @property
    def runtime(self) -> Path:
        return self.base / "rt" / "virtdeck"

    @property
    def state(self) -> Path:
        return self.base / "data" / "virtdeck"

    @property
    def socket(self) -> Path:
        return self.runtime / "virtdeckd.sock"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.base / "rt"),
            "XDG_DATA_HOME": str(self.base / "data"),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }

    def daemon_pid(self) -> int | None:
        try:
            return int((self.runtime / "virtdeckd.pid").read_text())
        except (OSError, ValueError):
            return None

    def daemon_pids(self) -> list[int]:
        """Every virtdeckd process serving this session (found by its environment)."""
        found = []
        marker = f"XDG_RUNTIME_DIR={self.base / 'rt'}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            daemon = b"drivers.daemon" in cmdline or cmdline.startswith(b"virtdeckd")
            if daemon and marker in environ.split(b"\0"):
                found.append(int(proc.name))
        return found

    def kill_daemons(self, signum: int = signal.SIGKILL) -> None:
        for pid in self.daemon_pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 5
        while self.daemon_pids() and time.monotonic() < deadline:
            time.sleep(0.02)


@pytest.fixture
def session(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    s = Session(short_tmp)
    (short_tmp / "rt").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short_tmp / "rt"))
    monkeypatch.setenv("XDG_DATA_HOME", str(short_tmp / "data"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    try:
        yield s
    finally:
        s.kill_daemons(signal.SIGKILL)
        kill_root_processes(s.runtime, run_subdir="run")


def run_cli(session: Session, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        env=session.env(),
        timeout=timeout,
        check=False,
    )


def spawn_daemon(
    session: Session, socket: Path, *extra: str, driver: str = "test:///default"
) -> subprocess.Popen[bytes]:
    """``virtdeckd --driver DRIVER --socket SOCKET [EXTRA...]`` as a direct child, once its
    socket exists."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drivers.daemon",
            "--driver",
            driver,
            "--socket",
            str(socket),
            *extra,
        ],
        env=session.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    # The socket file exists from bind() on, a moment before listen(): wait until it
    # accepts (a busy machine makes that moment long enough to connect into).
    while not _accepts(socket):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(
                f"daemon did not start: {proc.stderr.read() if proc.stderr else ''!r}"
            )
        time.sleep(0.01)
    return proc


def _accepts(path: Path) -> bool:
    import socket as sockets

    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
