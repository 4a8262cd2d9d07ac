"""libvirtd as a peer for the benchmarks, brought up the way machine-facts.md §8 describes.

    with LibvirtPeer() as peer:          # raises PeerUnavailable if it cannot come up
        peer.define("vdbench-x", xml)
        peer.virsh("start", "vdbench-x")

On a machine without systemd and without ``libvirt-daemon-system``, ``libvirtd -d`` needs:
the packages (``libvirt-daemon libvirt-clients libvirt-daemon-driver-qemu``, installed with
``--no-install-recommends`` if missing), its log/state/cache/runtime directories, the
compiled-in ``libvirt-qemu`` user (even though QEMU then runs as root), and a ``qemu.conf``
that needs no cgroups, no security driver and no ownership changes. :meth:`LibvirtPeer.start`
does all of that (backing up an existing ``qemu.conf``), starts ``libvirtd -d`` with a pid
file of its own and records the pid. :meth:`LibvirtPeer.stop` destroys and undefines every
domain whose name starts with the bench prefix, kills any of their QEMU processes still
alive, kills libvirtd by its pid, restores ``qemu.conf`` and removes the directories libvirtd
created in /etc/libvirt if they are empty. ``stop`` runs on every exit of the ``with`` block,
including errors and Ctrl-C, and also when ``start`` fails halfway.

A second libvirtd on the same machine (a migration's other end): ``LibvirtPeer(private=DIR,
host_uuid=...)`` runs it in a mount namespace of its own (``unshare --mount``) in which
/run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt and /etc/libvirt are bind
mounts of directories under DIR, so nothing of the first one is shared; its socket is then
``DIR/run/libvirt-sock`` as seen from outside (``qemu:///system?socket=...``, :attr:`uri`).
``host_uuid`` goes into the daemon's own libvirtd.conf (``-f``): libvirt refuses to migrate
between two daemons reporting the same host UUID.

Runs as root (``qemu:///system``). Usable alone for a quick check:
``python -m bench.libvirt_peer`` brings libvirtd up, prints ``virsh version`` and stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

URI = "qemu:///system"
PREFIX = "vdbench-"
PACKAGES = ("libvirt-daemon", "libvirt-clients", "libvirt-daemon-driver-qemu")
DIRS = (
    "/var/log/libvirt/qemu",
    "/var/lib/libvirt/qemu",
    "/var/cache/libvirt/qemu",
    "/run/libvirt",
)
ETC = Path("/etc/libvirt")
QEMU_CONF = ETC / "qemu.conf"
QEMU_CONF_TEXT = """\
# Written by virtdeck's bench/libvirt_peer.py for a benchmark run; removed (or the previous
# file restored) when the run ends.
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
"""
SOCKET = Path("/run/libvirt/libvirt-sock")
#: The directories a private instance gets its own copy of (bind mounts), by their name
#: under its directory.
PRIVATE_MOUNTS = {
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
    "etc": "/etc/libvirt",
}
#: Where a run records the pid of the libvirtd it started, so a later run can stop a
#: libvirtd that a killed run (SIGKILL) left behind.
STATE = Path("/run/vdbench-libvirtd.pid")
PRIVATE_STATE = Path("/run/vdbench-libvirtd-private.pid")
#: Held (flock) while this machine's system libvirtd belongs to one peer: two test runs
#: (say, two checkouts) would otherwise fight over /run/libvirt and qemu.conf.
LOCK = Path("/run/vdbench-libvirtd.lock")
LOCK_TIMEOUT = 900.0
QEMU_RUN = Path("/run/libvirt/qemu")
START_TIMEOUT = 15.0


class PeerUnavailable(Exception):
    """libvirtd cannot be brought up here; the message says why."""


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _kill(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM ``pid``, then SIGKILL it if it is still there after ``timeout``."""
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.01)


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ProcessLookupError(pid)


class LibvirtPeer:
    """A libvirtd started (and stopped) by this process; see the module docstring."""

    def __init__(
        self,
        *,
        prefix: str = PREFIX,
        install: bool = True,
        quiet: bool = True,
        private: Path | None = None,
        host_uuid: str | None = None,
    ) -> None:
        self.prefix = prefix
        self.install = install
        self.quiet = quiet
        self.private = private
        self.host_uuid = host_uuid
        if private is None:
            self.socket = SOCKET
            self.uri = URI
            self.state = STATE
            self.qemu_run = QEMU_RUN
        else:
            self.socket = private / "run" / "libvirt-sock"
            self.uri = f"{URI}?socket={self.socket}"
            self.state = PRIVATE_STATE
            self.qemu_run = private / "run" / "qemu"
        self.pid: int | None = None
        self.virsh_path = "virsh"
        self._scratch: Path | None = None
        self._conf_backup: Path | None = None
        self._conf_written = False
        #: What /etc/libvirt held before this libvirtd ran (it adds empty directories).
        self._etc_before: set[Path] | None = None
        self._lock: int | None = None
        self._command: list[str] | None = None

    # --- context manager ----------------------------------------------------------------

    def __enter__(self) -> LibvirtPeer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- bring-up -------------------------------------------------------------------------

    def start(self) -> None:
        if os.geteuid() != 0:
            raise PeerUnavailable("libvirtd as a peer needs root (qemu:///system)")
        self._ensure_packages()
        if self.private is None:
            self._take_lock()
        self._stop_leftover()
        if self.socket.exists() and self._answers():
            raise PeerUnavailable(
                f"a libvirtd this bench did not start already listens on {self.socket}; "
                "stop it first (the bench only measures a libvirtd it configured itself)"
            )
        for path in DIRS:
            Path(path).mkdir(parents=True, exist_ok=True)
        self._ensure_user()
        self._scratch = Path(tempfile.mkdtemp(prefix="vdbench-libvirt-", dir="/tmp"))
        pidfile = self._scratch / "libvirtd.pid"
        libvirtd = shutil.which("libvirtd") or "/usr/sbin/libvirtd"
        command = [libvirtd, "-d", "--pid-file", str(pidfile)]
        if self.host_uuid is not None:
            conf = self._scratch / "libvirtd.conf"
            conf.write_text(f'host_uuid = "{self.host_uuid}"\n')
            command += ["-f", str(conf)]
        if self.private is None:
            self._etc_before = set(ETC.glob("*")) if ETC.is_dir() else set()
            self._write_qemu_conf()
        else:
            command = self._in_private_namespace(command)
        self._command = command
        self._launch(pidfile)

    def _launch(self, pidfile: Path) -> None:
        """Run ``libvirtd -d`` and wait until it answers; sets :attr:`pid`."""
        assert self._command is not None
        # -d: libvirtd forks and its parent exits once the daemon has initialised (or
        # failed to), so the return code tells whether it came up.
        done = subprocess.run(
            self._command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=START_TIMEOUT,
        )
        if done.returncode != 0:
            raise PeerUnavailable(
                f"libvirtd -d failed (rc {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-500:]}; see /var/log/libvirt/libvirtd.log"
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                self.pid = int(pidfile.read_text().split()[0])
            if self.pid is not None and self.socket.exists():
                break
            time.sleep(0.01)
        if self.pid is None:
            raise PeerUnavailable(f"libvirtd wrote no pid file ({pidfile})")
        self.state.write_text(f"{self.pid}\n")
        if not _alive(self.pid):
            raise PeerUnavailable("libvirtd exited; see /var/log/libvirt/libvirtd.log")
        while time.monotonic() < deadline:
            if self._answers():
                return
            if not _alive(self.pid):
                raise PeerUnavailable("libvirtd exited; see /var/log/libvirt/libvirtd.log")
            time.sleep(0.02)
        raise PeerUnavailable(f"libvirtd did not answer on {self.uri} within {START_TIMEOUT:g} s")

    def halt(self) -> None:
        """Stop libvirtd alone (SIGTERM, as an administrator's restart does): its domains'
        QEMU processes go on running; :meth:`resume_daemon` starts it again."""
        assert self.pid is not None, "start() first"
        _kill(self.pid)
        self.pid = None

    def resume_daemon(self) -> None:
        """Start libvirtd again after :meth:`halt`, with the same configuration; it
        reconnects to the domains that kept running."""
        assert self._scratch is not None and self.pid is None, "halt() first"
        pidfile = self._scratch / "libvirtd.pid"
        pidfile.unlink(missing_ok=True)
        self._launch(pidfile)

    def _in_private_namespace(self, command: list[str]) -> list[str]:
        """``command`` run in a new mount namespace over this instance's own directories."""
        assert self.private is not None
        binds = []
        for name, target in PRIVATE_MOUNTS.items():
            source = self.private / name
            source.mkdir(parents=True, exist_ok=True)
            Path(target).mkdir(parents=True, exist_ok=True)
            binds.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
        for sub in ("lib/qemu", "cache/qemu", "log/qemu"):
            (self.private / sub).mkdir(parents=True, exist_ok=True)
        (self.private / "etc" / "qemu.conf").write_text(QEMU_CONF_TEXT)
        script = " && ".join([*binds, "exec " + shlex.join(command)])
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    def _ensure_packages(self) -> None:
        if self._installed():
            self.virsh_path = shutil.which("virsh") or "virsh"
            return
        if not self.install:
            raise PeerUnavailable("libvirt is not installed (" + " ".join(PACKAGES) + ")")
        if shutil.which("apt-get") is None:
            raise PeerUnavailable("libvirt is not installed and there is no apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        args = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            # The package lists may be missing or stale: refresh once and retry.
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
            done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0 or not self._installed():
            raise PeerUnavailable(
                "apt-get could not install libvirt: " + done.stderr.strip()[-300:]
            )
        self.virsh_path = shutil.which("virsh") or "virsh"

    @staticmethod
    def _installed() -> bool:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${db:Status-Status}\\n", *PACKAGES],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode == 0 and done.stdout.split() == ["installed"] * len(PACKAGES)

    @staticmethod
    def _ensure_user() -> None:
        probe = subprocess.run(["id", "-u", "libvirt-qemu"], capture_output=True, check=False)
        if probe.returncode == 0:
            return
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--user-group", "libvirt-qemu"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise PeerUnavailable(f"useradd libvirt-qemu failed: {done.stderr.strip()}")

    def _write_qemu_conf(self) -> None:
        QEMU_CONF.parent.mkdir(parents=True, exist_ok=True)
        if QEMU_CONF.exists() and QEMU_CONF.read_text() != QEMU_CONF_TEXT:
            backup = QEMU_CONF.with_name(f"qemu.conf.vdbench-{os.getpid()}")
            shutil.copy2(QEMU_CONF, backup)
            self._conf_backup = backup
        self._conf_written = True
        QEMU_CONF.write_text(QEMU_CONF_TEXT)

    def _answers(self) -> bool:
        done = subprocess.run(
            [self.virsh_path, "-c", self.uri, "version"],
            capture_output=True,
            check=False,
            timeout=30,
        )
        return done.returncode == 0

    def _stop_leftover(self) -> None:
        """Stop the libvirtd a killed earlier run recorded, if it is still there."""
        try:
            pid = int(self.state.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if _alive(pid) and _comm(pid) == "libvirtd":
            _kill(pid)
        self.state.unlink(missing_ok=True)

    # --- use ------------------------------------------------------------------------------

    def virsh(
        self, *args: str, check: bool = True, stdin_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``virsh -c qemu:///system ARGS...`` in a fresh process."""
        done = subprocess.run(
            [self.virsh_path, "-c", self.uri, *args],
            capture_output=True,
            text=True,
            input=stdin_text,
            check=False,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)}: {done.stderr.strip()}")
        return done

    def virsh_argv(self, *args: str) -> list[str]:
        return [self.virsh_path, "-c", self.uri, *args]

    def batch(self, commands: Iterable[str]) -> None:
        """Run many virsh commands in one virsh process (its shell reads them from stdin)."""
        script = "".join(f"{command}\n" for command in commands)
        if script:
            self.virsh(stdin_text=script)

    def define(self, name: str, xml: str) -> None:
        self.define_many({name: xml})

    def define_many(self, xmls: dict[str, str]) -> None:
        """Define the domains ``{name: xml}`` (one virsh process for all of them)."""
        assert self._scratch is not None, "start() first"
        for name in xmls:
            if not name.startswith(self.prefix):
                raise ValueError(f"bench domains are named {self.prefix}*: {name}")
        files = []
        for name, xml in xmls.items():
            path = self._scratch / f"{name}.xml"
            path.write_text(xml)
            files.append(path)
        self.batch(f"define {path}" for path in files)
        for path in files:
            path.unlink()

    def undefine_many(self, names: Sequence[str]) -> None:
        self.batch(f"undefine {name}" for name in names)

    def bench_domains(self) -> tuple[list[str], list[str]]:
        """(all, running) names of this bench's domains."""
        every = self.virsh("list", "--all", "--name", check=False).stdout.split()
        running = self.virsh("list", "--name", check=False).stdout.split()
        mine = [name for name in every if name.startswith(self.prefix)]
        return mine, [name for name in running if name.startswith(self.prefix)]

    def rss_kib(self) -> int:
        assert self.pid is not None
        return rss_kib(self.pid)

    # --- tear-down ------------------------------------------------------------------------

    def _qemu_pids(self) -> list[int]:
        """Pids of QEMU processes libvirt runs for this bench's domains (its pid files)."""
        pids = []
        for pidfile in self.qemu_run.glob(f"{self.prefix}*.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(pidfile.read_text().split()[0])
                if _alive(pid) and _comm(pid).startswith("qemu"):
                    pids.append(pid)
        return pids

    def stop(self) -> None:
        """Undefine the bench domains, kill libvirtd by pid, restore qemu.conf. Idempotent."""
        if self.pid is None and self._scratch is not None:
            # start() failed after libvirtd wrote its pid file but before it was read.
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int((self._scratch / "libvirtd.pid").read_text().split()[0])
                if _comm(pid) == "libvirtd":
                    self.pid = pid
        try:
            if self.pid is not None and _alive(self.pid):
                qemu = self._qemu_pids()
                with contextlib.suppress(Exception):
                    every, running = self.bench_domains()
                    self.batch(f"destroy {name}" for name in running)
                    self.undefine_many(every)
                for pid in qemu:
                    _kill(pid)
            if self.pid is not None:
                _kill(self.pid)
                self.state.unlink(missing_ok=True)
            self.pid = None
        finally:
            if self._conf_written:
                if self._conf_backup is not None:
                    shutil.move(self._conf_backup, QEMU_CONF)
                    self._conf_backup = None
                else:
                    QEMU_CONF.unlink(missing_ok=True)
                self._conf_written = False
            if self._etc_before is not None:
                # libvirtd creates qemu/, secrets/, nwfilter/ there; remove those it left
                # empty (rmdir fails on anything with content, which then stays).
                for path in set(ETC.glob("*")) - self._etc_before:
                    subs = [d for d in path.rglob("*") if d.is_dir()]
                    for sub in [*sorted(subs, key=lambda d: len(d.parts), reverse=True), path]:
                        with contextlib.suppress(OSError):
                            sub.rmdir()
                self._etc_before = None
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None
            if self._lock is not None:
                os.close(self._lock)  # releases the flock
                self._lock = None

    def _take_lock(self) -> None:
        """Wait for any other run's system libvirtd to finish, then own it until stop()."""
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise PeerUnavailable(
                        f"another run has held the system libvirtd ({LOCK}) for "
                        f"{LOCK_TIMEOUT:g} s; wait for it to end or stop it"
                    ) from None
                time.sleep(0.2)
                continue
            self._lock = fd
            return


def main() -> None:
    t0 = time.monotonic()
    try:
        with LibvirtPeer() as peer:
            print(f"libvirtd pid {peer.pid} up in {time.monotonic() - t0:.2f} s")
            print(peer.virsh("version").stdout.strip())
            print(f"libvirtd RSS {peer.rss_kib() / 1024:.1f} MiB")
    except PeerUnavailable as err:
        print(f"libvirt peer unavailable: {err}")


if __name__ == "__main__":
    main()
