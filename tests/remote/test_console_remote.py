"""The guest's console through a daemon reached over a real sshd: attach, talk, detach; the
log holds the boot (nobody was attached then) and outlives a daemon restart."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pytest

import drivers
from drivers.errors import DomainBusy
from tests.conftest import require_qemu
from tests.e2e.helpers import guest_xml
from tests.e2e.test_console_embed import read_until, wait_line
from tests.guest import require_guest
from tests.remote.conftest import Session, run_cli
from tests.remote.sshd import Sshd, daemon_command
from tests.remote.sshd import sshd_fixture as sshd_fixture  # the "sshd" fixture

pytestmark = [pytest.mark.qemu, pytest.mark.guest]


async def test_console_and_log_over_ssh(session: Session, sshd: Sshd, short_tmp: Path) -> None:
    require_qemu()
    guest = require_guest()
    uri = sshd.uri(daemon_command(session))
    async with await drivers.open(uri) as conn:
        assert {"console", "console-log"} <= conn.capabilities
        dom = await conn.define_xml(guest_xml("rc1", guest, short_tmp / "rc1.sock"))
        await dom.start()
        ready = await wait_line(dom.console_log(follow=True), "VIRTDECK-GUEST-READY")
        assert ready.exact
        async with await dom.console() as console:
            await console.write(b"ping\n")
            await read_until(console, b"VIRTDECK-PONG")
            async with await drivers.open(uri) as other:
                with pytest.raises(DomainBusy, match="--force"):
                    await (await other.lookup("rc1")).console()
        # Closed: another client may have it now.
        async with await dom.console() as again:
            await again.write(b"ping\n")
            await read_until(again, b"VIRTDECK-PONG")

    # The daemon is killed and comes back (the next connection starts it): the log is
    # still there, with the boot and both answers.
    session.kill_daemons(signal.SIGKILL)
    async with await drivers.open(uri) as conn:
        dom = await conn.lookup("rc1")
        texts = [line.text async for line in dom.console_log()]
        assert any(t.startswith("VIRTDECK-GUEST-READY") for t in texts)
        assert texts.count("VIRTDECK-PONG") == 2
        await asyncio.sleep(0)
        await dom.destroy()


async def test_cli_console_and_logs(session: Session, short_tmp: Path) -> None:
    require_qemu()
    guest = require_guest()
    async with await drivers.open("qemu:///session") as conn:
        dom = await conn.define_xml(guest_xml("rc2", guest, short_tmp / "rc2.sock"))
        await dom.start()
        await wait_line(dom.console_log(follow=True), "VIRTDECK-GUEST-READY")
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui.cli", "console", "rc2",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=session.env(),
        )  # fmt: skip
        assert cli.stdin is not None and cli.stdout is not None
        assert (
            b"Escape character is ^]" in await cli.stdout.readline() + await cli.stdout.readline()
        )
        cli.stdin.write(b"ping\n")
        seen = b""
        while b"VIRTDECK-PONG" not in seen:
            seen += await asyncio.wait_for(cli.stdout.read(1024), 10)
        cli.stdin.write(b"\x1d")  # ctrl+]: leave
        await asyncio.wait_for(cli.wait(), 10)
        assert cli.returncode == 0
        logs = await asyncio.to_thread(run_cli, session, "logs", "--timestamps", "rc2")
        assert logs.returncode == 0, logs.stderr
        lines = logs.stdout.splitlines()
        assert any(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  VIRTDECK-GUEST-READY", x)
                   for x in lines), lines  # fmt: skip
        assert any(line.endswith(" VIRTDECK-PONG") for line in lines)
        recent = await asyncio.to_thread(run_cli, session, "logs", "--since", "1h", "rc2")
        assert "VIRTDECK-PONG" in recent.stdout
        await dom.destroy()
