"""The CLI against a real session daemon and the real test guest, with `virtdeck event --loop`
in another process printing what virsh would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import diskless_xml, guest_xml
from tests.guest import READY_RE, SerialConsole, require_guest
from tests.remote.conftest import Session, run_cli

pytestmark = [pytest.mark.guest, pytest.mark.qemu]


class EventWatcher:
    """`virtdeck event --loop --all` in its own process; lines collected as they come."""

    def __init__(self, session: Session) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "event", "--loop", "--all"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=session.env(),
        )
        self.lines: list[str] = []

    async def wait_for(self, wanted: list[str], timeout: float = 30) -> None:
        """Read lines until ``wanted`` has appeared in order (other lines may come between)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        position = 0
        index = 0
        while True:
            while index < len(self.lines) and position < len(wanted):
                if self.lines[index] == wanted[position]:
                    position += 1
                index += 1
            if position == len(wanted):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"wanted {wanted}; saw {self.lines}")
            line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), remaining)
            if not line:
                raise AssertionError(f"event process ended; saw {self.lines}")
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        self.lines += out.splitlines()
        return self.proc.returncode, err


def cli(session: Session, *args: str) -> str:
    result = run_cli(session, *args)
    assert result.returncode == 0, f"virtdeck {' '.join(args)}: {result.stderr}"
    return result.stdout


def lifecycle(name: str, words: str) -> str:
    return f"event 'lifecycle' for domain '{name}': {words}"


async def test_cli_lifecycle_with_event_loop(session: Session) -> None:
    guest = require_guest()
    serial = session.base / "c.sock"
    xml = session.base / "g.xml"
    xml.write_text(guest_xml("cg", guest, serial))
    assert cli(session, "define", str(xml)) == f"Domain 'cg' defined from {xml}\n\n"
    watcher = EventWatcher(session)
    try:
        await asyncio.sleep(0.5)  # let it subscribe before the first action
        assert cli(session, "start", "cg") == "Domain 'cg' started\n\n"
        await watcher.wait_for(
            [lifecycle("cg", "Resumed Unpaused"), lifecycle("cg", "Started Booted")]
        )
        assert cli(session, "domstate", "--reason", "cg") == "running (booted)\n\n"
        console = await SerialConsole.connect(serial)
        await console.wait_for(READY_RE, timeout=30)

        cli(session, "suspend", "cg")
        assert cli(session, "domstate", "--reason", "cg") == "paused (user)\n\n"
        cli(session, "resume", "cg")
        assert cli(session, "domstate", "--reason", "cg") == "running (unpaused)\n\n"
        await watcher.wait_for(
            [lifecycle("cg", "Suspended Paused"), lifecycle("cg", "Resumed Unpaused")]
        )

        assert cli(session, "reboot", "cg") == "Domain 'cg' is being rebooted\n\n"
        await watcher.wait_for(["event 'reboot' for domain 'cg'"] * 2)
        await console.wait_for(READY_RE, timeout=45)
        assert cli(session, "domstate", "--reason", "cg") == "running (unpaused)\n\n"
        await console.close()

        assert cli(session, "shutdown", "cg") == "Domain 'cg' is being shutdown\n\n"
        await watcher.wait_for(
            [
                lifecycle("cg", "Shutdown Finished after guest request"),
                lifecycle("cg", "Stopped Shutdown"),
            ]
        )
        assert cli(session, "domstate", "--reason", "cg") == "shut off (shutdown)\n\n"

        cli(session, "start", "cg")
        assert cli(session, "destroy", "cg") == "Domain 'cg' destroyed\n\n"
        await watcher.wait_for(
            [
                lifecycle("cg", "Shutdown Finished after host request"),
                lifecycle("cg", "Stopped Destroyed"),
            ]
        )
        assert cli(session, "domstate", "--reason", "cg") == "shut off (destroyed)\n\n"
        assert cli(session, "undefine", "cg") == "Domain 'cg' has been undefined\n\n"
        await watcher.wait_for([lifecycle("cg", "Undefined Removed")])
        failed = run_cli(session, "domstate", "cg")
        assert failed.returncode == 1 and failed.stderr.startswith("error: ")
    finally:
        code, err = watcher.stop()
    assert code == 0, err
    assert any(line.startswith("events received: ") for line in watcher.lines)


async def test_cli_after_daemon_sigkill(session: Session) -> None:
    guest = require_guest()
    serial = session.base / "k.sock"
    files = {"k1": guest_xml("k1", guest, serial), "k2": diskless_xml("k2")}
    for name, text in files.items():
        path = session.base / f"{name}.xml"
        path.write_text(text)
        cli(session, "define", str(path))
        cli(session, "start", name)
    cli(session, "suspend", "k2")
    console = await SerialConsole.connect(serial)
    await console.wait_for(READY_RE, timeout=30)
    before = {name: cli(session, "dumpxml", "--inactive", name) for name in files}
    pid = session.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    # the next command starts a new daemon, which finds both guests where they were
    listing = cli(session, "list", "--all")
    assert session.daemon_pid() not in (None, pid)
    assert " k1 " in listing and "running" in listing and "paused" in listing
    assert cli(session, "domstate", "--reason", "k1") == "running (booted)\n\n"
    assert cli(session, "domstate", "--reason", "k2") == "paused (user)\n\n"
    for name, xml in before.items():
        assert cli(session, "dumpxml", "--inactive", name) == xml
    await console.send("ping")
    await console.wait_for("VIRTDECK-PONG")
    await console.close()
    for name in files:
        cli(session, "destroy", name)


async def test_daemon_restart_while_the_guest_powers_off_for_a_fake_reboot(
    session: Session,
) -> None:
    """The daemon pressed the power button for a reboot, then stopped; the guest powered
    off with no daemon there. The next daemon finishes the reboot, as libvirtd does
    (tests/differential found that it used to shut the domain down instead)."""
    guest = require_guest()
    serial = session.base / "f.sock"
    xml = session.base / "f.xml"
    xml.write_text(guest_xml("fr", guest, serial))
    cli(session, "define", str(xml))
    cli(session, "start", "fr")
    console = await SerialConsole.connect(serial)
    await console.wait_for(READY_RE, timeout=30)
    cli(session, "suspend", "fr")
    cli(session, "resume", "fr")  # running (unpaused): a reboot finished on reconnect says booted
    # The guest's power-button handler waits 3 s before it powers off.
    await console.send("sh printf '#!/bin/sh\\nsleep 3\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080")
    await console.wait_for("VIRTDECK-DONE rc=0", timeout=10)
    t0 = time.monotonic()
    cli(session, "reboot", "fr")
    session.kill_daemons(signal.SIGTERM)
    assert not session.daemon_pids() and time.monotonic() - t0 < 2.5
    await asyncio.sleep(4.5 - (time.monotonic() - t0))  # powered off, nobody watching
    cli(session, "list", "--all")  # a new daemon
    await console.wait_for(READY_RE, timeout=45)
    assert cli(session, "domstate", "--reason", "fr") == "running (booted)\n\n"
    await console.send("ping")
    await console.wait_for("VIRTDECK-PONG")
    await console.close()
    cli(session, "destroy", "fr")


def test_event_timeout_on_the_blocking_client(session: Session) -> None:
    cli(session, "list", "--all")  # starts the daemon: later commands take the quick path
    started = time.monotonic()
    result = run_cli(session, "event", "--all", "--loop", "--timeout", "1")
    assert 0.9 < time.monotonic() - started < 10
    assert result.returncode == 1
    assert result.stdout == "event loop timed out\nevents received: 0\n\n"


def test_a_command_on_a_running_daemon_loads_only_what_it_needs(session: Session) -> None:
    """The quick path (blocking client) loads no asyncio, dataclasses, pathlib or UI: they
    were most of a `virtdeck list`'s run time (see drivers/records.py)."""
    cli(session, "list", "--all")  # starts the daemon
    code = (
        "import sys; before = set(sys.modules);"  # what site loaded (an editable install's
        "import contextlib, io, tui.cli;"  # finder brings pathlib) is not ours
        "out = io.StringIO();"
        "ctx = contextlib.redirect_stdout(out); ctx.__enter__();"
        "status = tui.cli.main(['list', '--all']);"
        "ctx.__exit__(None, None, None);"
        "heavy = ('asyncio', 'dataclasses', 'pathlib', 'inspect', 'textual', 'rich', 'lxml');"
        "print(status, sorted(m for m in set(sys.modules) - before if m.split('.')[0] in heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=session.env(), check=True
    )
    assert result.stdout.strip() == "0 []", result.stderr
