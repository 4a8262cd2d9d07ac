"""Launching QEMU detached, and watching, signalling and waiting for its process.

QEMU runs in its own session with stdin from /dev/null and stdout/stderr appended to the
domain's log file, so it outlives the process that started it (a daemon restart must not
take the guests down). The same :class:`QemuProcess` handles a process this process
started and one it found again after a restart: exit is observed through a pidfd, which
works for both, and a child is reaped so no zombie is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from drivers.errors import HypervisorError


class QemuProcess:
    """One QEMU process, ours or adopted."""

    def __init__(
        self, pid: int, popen: subprocess.Popen[bytes] | None = None, log_offset: int = 0
    ) -> None:
        self.pid = pid
        self.log_offset = log_offset  # where this run's own output starts in the log
        self._popen = popen
        self._pidfd: int | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        self._watching = False
        with contextlib.suppress(OSError):
            self._pidfd = os.pidfd_open(pid)

    @classmethod
    def spawn(
        cls,
        argv: list[str],
        log_path: Path,
        pass_fds: tuple[int, ...] = (),
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        owner: str | None = None,
    ) -> QemuProcess:
        """Start ``argv`` detached; stdout/stderr go to ``log_path``; ``env`` adds to the
        minimal environment QEMU runs with (``<qemu:env>``), and ``owner`` is put in it
        (see :func:`owned_processes`)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"{stamp}: starting up\n{' '.join(argv)}\n".encode())
            log.flush()
            offset = log.tell()
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=pass_fds,
                    start_new_session=True,
                    close_fds=True,
                    cwd=cwd,
                    env={
                        "LC_ALL": "C",
                        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                        **(env or {}),
                        **({OWNER_VARIABLE: owner} if owner is not None else {}),
                    },
                )
            except OSError as err:
                raise HypervisorError(
                    f"Could not run {argv[0]}: {err.strerror}. Install QEMU "
                    "(Debian/Ubuntu: apt-get install qemu-system-x86 qemu-utils)."
                ) from err
        return cls(popen.pid, popen, offset)

    @property
    def is_child(self) -> bool:
        return self._popen is not None

    def alive(self) -> bool:
        """True while the process exists and has not exited."""
        if self._popen is not None:
            return self._popen.poll() is None
        return pid_alive(self.pid)

    def signal(self, signum: int) -> None:
        """Send ``signum``; a process that is already gone is not an error."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signum)
            else:
                os.kill(self.pid, signum)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the process to exit; True if it did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._pidfd is not None and self.alive():
            ready: asyncio.Future[None] = loop.create_future()
            self._waiters.add(ready)
            # One reader per pidfd, whoever waits: a second add_reader would replace the
            # first waiter's, and a reader left on a closed pidfd would hit whatever
            # socket reuses its number next.
            if not self._watching:
                loop.add_reader(self._pidfd, self._exited)
                self._watching = True
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ready), timeout)
            finally:
                self._waiters.discard(ready)
                if not self._waiters:
                    self._unwatch()
        while self.alive() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return not self.alive()

    def _exited(self) -> None:
        # A pidfd stays readable once the process has exited: stop watching at once.
        self._unwatch()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _unwatch(self) -> None:
        if self._watching and self._pidfd is not None:
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self._pidfd)
        self._watching = False

    async def terminate(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns once it is gone."""
        self.signal(signal.SIGTERM)
        if not await self.wait(grace):
            self.signal(signal.SIGKILL)
            await self.wait(5.0)

    def close(self) -> None:
        """Release the pidfd (the process itself is left alone).

        Waiters stop waiting on the pidfd and fall back to polling, so a wait that is in
        progress still ends as soon as the process has gone.
        """
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._pidfd is not None:
            self._unwatch()
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None

    def ended(self) -> str:
        """How a process this process started ended, in words ("was killed by SIGKILL",
        "exited with status 1"); "" while it runs or when that cannot be known."""
        if self._popen is None or self._popen.poll() is None:
            return ""
        code = self._popen.returncode
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"was killed by {name}"
        return f"exited with status {code}"

    def cpu_time_ns(self) -> int:
        """User + system CPU time of the process, from /proc."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0
        ticks = int(fields[11]) + int(fields[12])
        return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0


#: The environment variable that names who launched a QEMU process (a driver's run
#: directory), so that a driver can find the processes it started even when it was killed
#: before it could write down their pids.
OWNER_VARIABLE = "VIRTDECK_OWNER"


def owned_processes(prefix: str) -> dict[int, str]:
    """The live QEMU processes whose owner (see :meth:`QemuProcess.spawn`) starts with
    ``prefix``: pid → owner."""
    marker = f"{OWNER_VARIABLE}={prefix}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv0 = (proc / "cmdline").read_bytes().split(b"\0", 1)[0]
            if b"qemu" not in argv0:
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry.startswith(marker) and pid_alive(int(proc.name)):
                found[int(proc.name)] = entry.partition(b"=")[2].decode(errors="replace")
    return found


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def listening_socket(path: Path) -> socket.socket:
    """A unix socket bound at ``path`` and listening, to hand to QEMU as its monitor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(4)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def log_tail(path: Path, lines: int = 8, since: int = 0) -> str:
    """The last ``lines`` lines of the log written after byte offset ``since``."""
    try:
        with open(path, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    # QEMU prefixes its messages with a timestamp and its name (-msg timestamp=on).
    kept = [_QEMU_PREFIX.sub("", line) for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


_QEMU_PREFIX = re.compile(r"^\S+Z qemu-system-\w+: |^qemu-system-\w+: ")
