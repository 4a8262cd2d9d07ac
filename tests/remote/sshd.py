"""A real OpenSSH sshd for the qemu+ssh:// tests, run as a direct child and always ended.

The test machine is also the "remote host": the remote command is this checkout's
``python -m drivers.daemon`` with the test session's XDG directories, so the daemons and
QEMUs it starts are found and killed by the ``session`` fixture.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import asyncssh
import pytest

from tests.conftest import require
from tests.remote.conftest import Session

SSHD = Path("/usr/sbin/sshd")  # sshd re-executes itself, so it must be run by absolute path
REPO = Path(__file__).resolve().parents[2]


def require_sshd() -> None:
    require(os.geteuid() == 0, "the sshd tests start OpenSSH's sshd, which needs root")
    require(SSHD.exists(), "sshd is not installed (apt-get install openssh-server)")


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


def write_key(key: asyncssh.SSHKey, path: Path) -> None:
    """Private key 0600 (sshd refuses readable host keys) and its .pub next to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(key.export_private_key())
    key.write_public_key(str(path) + ".pub")


def new_key(path: Path) -> asyncssh.SSHKey:
    key = asyncssh.generate_private_key("ssh-ed25519")
    write_key(key, path)
    return key


def known_hosts_line(address: str, port: int, key: asyncssh.SSHKey) -> str:
    return f"[{address}]:{port} {key.export_public_key().decode().strip()}\n"


def process_tree(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children before grandchildren)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(proc.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def daemon_command(session: Session, *extra: str) -> list[str]:
    """The remote command: this checkout's virtdeckd with the session's directories."""
    return [
        "env",
        f"XDG_RUNTIME_DIR={session.base / 'rt'}",
        f"XDG_DATA_HOME={session.base / 'data'}",
        f"PYTHONPATH={REPO}",
        sys.executable,
        "-m",
        "drivers.daemon",
        *extra,
    ]


@dataclass
class Sshd:
    """A running sshd and the files a client needs to reach it."""

    dir: Path
    address: str
    port: int
    proc: subprocess.Popen[bytes]
    host_key: asyncssh.SSHKey
    client_key: Path
    known_hosts: Path
    ssh_config: Path
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def uri(
        self,
        command: list[str] | None = None,
        mode: str = "session",
        user: str = "root",
        **params: str,
    ) -> str:
        """A qemu+ssh:// URI for this sshd; defaults: our client key, known_hosts, config."""
        query = {
            "keyfile": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "config": str(self.ssh_config),
        }
        if command is not None:
            query["command"] = shlex.join(command)
        query.update(params)
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"qemu+ssh://{user}@{host}:{self.port}/{mode}?" + urlencode(query, quote_via=quote)

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes and what runs under them."""
        return process_tree(self.proc.pid)

    def connection_pids(self) -> list[int]:
        """One per SSH connection: the master's direct children."""
        return [pid for pid in self.session_pids() if _ppid(pid) == self.proc.pid]

    def kill_sessions(self) -> None:
        """SIGKILL every per-connection sshd (the TCP connections drop), keep the listener."""
        for pid in self.session_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 5
        while self.session_pids() and time.monotonic() < deadline:
            time.sleep(0.01)  # the master reaps them

    def stop(self) -> None:
        self.kill_sessions()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def start_sshd(
    directory: Path, address: str = "127.0.0.1", port: int | None = None, netns: str | None = None
) -> Sshd:
    """Keys, known_hosts, authorized_keys, sshd_config in ``directory``; sshd listening."""
    require_sshd()
    # Root's sshd needs its privilege-separation directory; nothing creates it here.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port(address)
    host_key = new_key(directory / "host_ed25519")
    client_key = new_key(directory / "client_ed25519")
    authorized = directory / "authorized_keys"
    authorized.write_text(client_key.export_public_key().decode())
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(known_hosts_line(address, port, host_key))
    ssh_config = directory / "ssh_config"  # empty: root's own ~/.ssh/config must not matter
    ssh_config.write_text("")
    config = directory / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress {address}
HostKey {directory / "host_ed25519"}
AuthorizedKeysFile {authorized}
PidFile {directory / "sshd.pid"}
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
ClientAliveInterval 1
ClientAliveCountMax 3
"""
    )
    check = subprocess.run(
        [str(SSHD), "-t", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, f"sshd -t refused the config: {check.stderr}"
    log = directory / "sshd.log"
    prefix = ["ip", "netns", "exec", netns] if netns else []
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [*prefix, str(SSHD), "-f", str(config), "-D", "-e"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    sshd = Sshd(
        directory, address, port, proc, host_key, directory / "client_ed25519", known_hosts,
        ssh_config, log,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while "Server listening on" not in sshd.log_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            sshd.stop()
            pytest.fail(f"sshd did not start listening: {sshd.log_text()}")
        time.sleep(0.01)
    return sshd


@pytest.fixture(name="sshd")
def sshd_fixture(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sshd]:
    """An sshd on a free loopback port; only our client key may log in (as root)."""
    require_sshd()
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # no agent keys of whoever runs this
    server = start_sshd(short_tmp / "ssh")
    try:
        yield server
    finally:
        server.stop()


__all__ = [
    "Sshd",
    "daemon_command",
    "free_port",
    "known_hosts_line",
    "new_key",
    "process_tree",
    "require_sshd",
    "sshd_fixture",
    "start_sshd",
]
