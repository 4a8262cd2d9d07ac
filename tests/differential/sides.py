"""The two sides of a differential run: libvirtd driven by ``virsh``, virtdeck driven by its
CLI against its daemon. Both are used only as a user would: one command-line process per
command, and ``event --loop --all`` in a process of its own whose lines are collected.

virtdeck's side is the session daemon (``qemu:///session``, started by the first CLI
command as it is for a user) in private XDG directories: like libvirtd it is a separate
process that owns the QEMU monitors and outlives every client, so each CLI call, the event
watcher and a daemon restart mean the same thing on both sides. (An embedded root belongs to
the one process that opened it, so a second process could neither act on its domains nor
see their events.) A migration's other end is a second daemon on a socket of its own, as
libvirt's is a second libvirtd in a private mount namespace.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.libvirt_peer import LibvirtPeer
from tests.remote.conftest import Session

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 120.0


@dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str


async def run(argv: Sequence[str], env: dict[str, str] | None = None) -> Result:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


class Watcher:
    """``event --loop --all`` in its own process; every line it prints, as it comes."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.env = env
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
        )
        self._task = asyncio.create_task(self._read(self.proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode(errors="replace").rstrip("\n")
            if text:
                self.lines.append(text)
                self._changed.set()

    def mark(self) -> int:
        return len(self.lines)

    async def wait_quiet(self, quiet: float, limit: float) -> None:
        """Until no line has come for ``quiet`` seconds (at most ``limit`` seconds)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), quiet)
            except TimeoutError:
                return

    async def wait_line(self, since: int, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if any(needle in line for line in self.lines[since:]):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
            self._task = None


class Side(abc.ABC):
    """One manager under test: its CLI, its event watcher, its QEMU processes, its daemon."""

    label: str
    uri: str

    @abc.abstractmethod
    def argv(self, *args: str, uri: str | None = None) -> list[str]:
        """The command line of one CLI command."""

    @property
    def env(self) -> dict[str, str] | None:
        return None

    async def cli(self, *args: str, uri: str | None = None, check: bool = True) -> Result:
        done = await run(self.argv(*args, uri=uri), self.env)
        if check and done.rc != 0:
            raise AssertionError(f"{self.label}: {' '.join(args)}: rc {done.rc}: {done.err}")
        return done

    def watcher(self, uri: str | None = None) -> Watcher:
        return Watcher(self.argv("event", "--loop", "--all", uri=uri), self.env)

    async def domstate(self, name: str, uri: str | None = None) -> str:
        """``domstate --reason`` as one line; any failure is ``error`` (the words differ)."""
        done = await self.cli("domstate", "--reason", name, uri=uri, check=False)
        if done.rc != 0:
            return "error"
        return done.out.strip()

    @abc.abstractmethod
    def qemu_pid(self, name: str, uri: str | None = None) -> int | None:
        """The pid of the domain's QEMU process, read where the manager records it."""

    @abc.abstractmethod
    async def halt_daemon(self) -> None:
        """Stop the daemon (SIGTERM); QEMU processes run on."""

    @abc.abstractmethod
    async def resume_daemon(self) -> None:
        """Start the daemon again the way its user would."""

    @abc.abstractmethod
    async def second_host(self, scratch: Path) -> str:
        """Bring up a migration's other end; returns its URI."""

    @abc.abstractmethod
    def dumps(self, name: str) -> int:
        """How many memory dumps of the domain the manager has written."""

    @abc.abstractmethod
    async def close(self) -> None:
        """End everything this side started."""


class LibvirtSide(Side):
    label = "libvirt"

    def __init__(self, peer: LibvirtPeer) -> None:
        self.peer = peer
        self.uri = peer.uri
        self.second: LibvirtPeer | None = None

    def argv(self, *args: str, uri: str | None = None) -> list[str]:
        return [self.peer.virsh_path, "-c", uri or self.uri, *args]

    def qemu_pid(self, name: str, uri: str | None = None) -> int | None:
        peer = self.second if uri is not None and self.second is not None else self.peer
        try:
            return int((peer.qemu_run / f"{name}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def dumps(self, name: str) -> int:
        # auto_dump_path's default; libvirt names a dump <id>-<name>-<time>
        return len(list(Path("/var/lib/libvirt/qemu/dump").glob(f"*{name}*")))

    async def halt_daemon(self) -> None:
        await asyncio.to_thread(self.peer.halt)

    async def resume_daemon(self) -> None:
        await asyncio.to_thread(self.peer.resume_daemon)

    async def second_host(self, scratch: Path) -> str:
        import uuid

        peer = LibvirtPeer(prefix=self.peer.prefix, private=scratch, host_uuid=str(uuid.uuid4()))
        self.second = peer
        try:
            await asyncio.to_thread(peer.start)
        except BaseException:
            await asyncio.to_thread(peer.stop)
            raise
        return peer.uri

    async def close(self) -> None:
        if self.second is not None:
            await asyncio.to_thread(self.second.stop)
            self.second = None


class VirtdeckSide(Side):
    label = "virtdeck"

    def __init__(self, session: Session) -> None:
        self.session = session
        self.uri = "qemu:///session"
        self.second_proc: subprocess.Popen[bytes] | None = None
        self.second_root: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**self.session.env(), "PYTHONPATH": str(REPO)}

    def argv(self, *args: str, uri: str | None = None) -> list[str]:
        return [sys.executable, "-m", "tui.cli", "-c", uri or self.uri, *args]

    def qemu_pid(self, name: str, uri: str | None = None) -> int | None:
        if uri is not None and self.second_root is not None:
            run_dir = self.second_root / "run"
        else:
            run_dir = self.session.runtime / "run"
        try:
            return int(json.loads((run_dir / f"{name}.json").read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def dumps(self, name: str) -> int:
        return len(list(self.session.state.glob(f"dump/{name}-*.core")))

    async def halt_daemon(self) -> None:
        pids = self.session.daemon_pids()
        assert pids, "no virtdeckd serves this session"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self.session.daemon_pids() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not self.session.daemon_pids(), "virtdeckd did not stop on SIGTERM"

    async def resume_daemon(self) -> None:
        # A user's next command starts the session daemon again.
        await self.cli("list", "--all")

    async def second_host(self, scratch: Path) -> str:
        from tests.remote.conftest import spawn_daemon

        scratch.mkdir(parents=True, exist_ok=True)
        self.second_root = scratch / "root"
        socket = scratch / "d.sock"
        self.second_proc = await asyncio.to_thread(
            spawn_daemon, self.session, socket, driver=f"qemu:///embed?root={self.second_root}"
        )
        return f"qemu:///system?socket={socket}"

    async def close(self) -> None:
        from tests.e2e.conftest import kill_root_processes

        proc, self.second_proc = self.second_proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
        if self.second_root is not None:
            kill_root_processes(self.second_root)
