"""A driver killed in the middle of a start leaves no guest behind that nobody manages.

Found by the chaos tier (tests/chaos/test_daemon_kill.py): a daemon SIGKILLed between
spawning QEMU and writing the domain's status left a QEMU running that the next daemon did
not know (a start would then run the guest twice), and one killed before ``cont`` left the
domain stuck in ``paused (starting up)``. Each case here kills a child process that owns
the embed root at one such moment, then opens the root again.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import drivers
from tests.chaos.helpers import kill_qemus, qemu_pids
from tests.e2e.helpers import diskless_xml, state_of

pytestmark = pytest.mark.qemu

UUID = "5b0d3c55-7a1e-4c8e-9a51-0c0ffee00013"

CHILD = """
import asyncio, os, signal, sys
import drivers
from drivers.qemu import driver, process

moment = sys.argv[2]
if moment == "after-spawn":
    spawn = process.QemuProcess.spawn.__func__
    def dying_spawn(cls, *args, **kwargs):
        proc = spawn(cls, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    process.QemuProcess.spawn = classmethod(dying_spawn)
elif moment == "before-monitor":
    async def dying_connect(path):
        os.kill(os.getpid(), signal.SIGKILL)
    driver._connect_unix = dying_connect

async def main():
    conn = await drivers.open(f"qemu:///embed?root={sys.argv[1]}")
    dom = await conn.define_xml(sys.argv[3])
    await dom.start(paused=moment == "started-paused")
    if moment == "destroyed":
        await dom.destroy()
    os.kill(os.getpid(), signal.SIGKILL)  # right after the last call returned

asyncio.run(main())
"""


def die_while_starting(root: Path, moment: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), moment, diskless_xml("o1", uuid=UUID)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode()


@pytest.mark.parametrize(
    ("moment", "after"),
    [
        # the status never named the process (and may not say "starting" either: it is
        # written behind, so the domain may read as never started)
        ("after-spawn", ("shut off (daemon)", "shut off (unknown)")),
        ("before-monitor", ("shut off (daemon)",)),  # named, but still paused before cont
        ("started", ("running (booted)",)),  # a finished start is adopted, not killed
        # what a call that returned did is on disk (the status is written behind, so these
        # read "shut off (daemon)" and "shut off (crashed)" without the flush at the end)
        ("started-paused", ("paused (user)",)),
        ("destroyed", ("shut off (unknown)",)),
    ],
)
async def test_a_start_cut_short_leaves_no_orphan(
    embed_root: Path, moment: str, after: tuple[str, ...]
) -> None:
    try:
        die_while_starting(embed_root, moment)
        if moment != "destroyed":
            assert len(qemu_pids([UUID])[UUID]) == 1  # the QEMU outlived its driver
        conn = await drivers.open(f"qemu:///embed?root={embed_root}")
        try:
            assert await state_of(conn, "o1") in after
            running = 1 if after[0].startswith(("running", "paused")) else 0
            assert len(qemu_pids([UUID])[UUID]) == running
            if not running:
                await (await conn.lookup("o1")).start()
            assert len(qemu_pids([UUID])[UUID]) == 1  # once, whatever came before
            assert await state_of(conn, "o1") in ("running (booted)", "paused (user)")
        finally:
            await conn.close()
    finally:
        kill_qemus([UUID])


async def test_an_unreachable_monitor_gets_its_qemu_killed(embed_root: Path) -> None:
    try:
        die_while_starting(embed_root, "started")
        for sock in (embed_root / "run").rglob("monitor.sock"):
            sock.unlink()  # nobody can drive that QEMU any more
        conn = await drivers.open(f"qemu:///embed?root={embed_root}")
        try:
            assert await state_of(conn, "o1") == "shut off (crashed)"
            assert qemu_pids([UUID])[UUID] == []
        finally:
            await conn.close()
    finally:
        kill_qemus([UUID])
