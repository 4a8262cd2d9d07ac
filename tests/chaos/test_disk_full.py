"""A full disk under the state directory (a small tmpfs): define fails with a sentence that
names the full disk and says what to do, existing definitions stay byte-identical, failing
status writes neither crash the daemon nor corrupt state, and after space is freed
everything works again (also across a daemon restart)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.errors import VirtError
from drivers.remote.local import connect_unix
from tests.chaos.helpers import definitions, kill_qemus, qemu_pids
from tests.conftest import require, require_qemu
from tests.e2e.helpers import diskless_xml, state_of
from tests.remote.conftest import Session, spawn_daemon

pytestmark = pytest.mark.qemu

UUIDS = [f"d15cf011-0000-4000-8000-00000000000{i}" for i in range(1, 5)]


@pytest.fixture
def small_disk(short_tmp: Path) -> Iterator[Path]:
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    mount = short_tmp / "fs"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (65536, 4096, 1):  # down to the last byte
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    probe = disk / "probe"
    with pytest.raises(OSError) as err:
        probe.write_bytes(b"x" * 4096)
    assert err.value.errno == errno.ENOSPC
    with contextlib.suppress(FileNotFoundError):
        probe.unlink()
    return filler


async def test_state_disk_full(session: Session, small_disk: Path) -> None:
    require_qemu()
    root = small_disk / "root"
    socket = session.base / "full.sock"
    driver = f"qemu:///embed?root={root}"
    daemon = spawn_daemon(session, socket, driver=driver)
    try:
        conn = await connect_unix(socket, driver)
        d1 = await conn.define_xml(diskless_xml("d1", memory_mib=32, uuid=UUIDS[0]))
        await conn.define_xml(diskless_xml("d2", memory_mib=32, uuid=UUIDS[1]))
        await d1.start()
        before = {p.name: p.read_bytes() for p in (root / "domains").glob("*.xml")}
        filler = fill(small_disk)

        # a new definition: refused, in words that name the disk and the way out
        with pytest.raises(VirtError) as caught:
            await conn.define_xml(diskless_xml("d3", memory_mib=32, uuid=UUIDS[2]))
        message = str(caught.value)
        print(message)
        assert "'d3'" in message and str(root) in message
        assert "no space left" in message.lower() and "free" in message.lower()
        # an update of an existing one: refused, and the old file is untouched
        with pytest.raises(VirtError, match=r"(?i)no space left"):
            await conn.define_xml(diskless_xml("d1", memory_mib=48, uuid=UUIDS[0]))
        # status writes fail behind the scenes; the daemon and the states do not
        await d1.suspend()
        assert await state_of(conn, "d1") == "paused (user)"
        await d1.resume()
        assert await state_of(conn, "d1") == "running (unpaused)"
        # a start that cannot write its files fails clearly, and runs nothing
        d2 = await conn.lookup("d2")
        try:
            await d2.start()
            started = True
        except VirtError as err:
            started = False
            print(err)
            assert "'d2'" in str(err) and "no space left" in str(err).lower()
            assert await state_of(conn, "d2") in ("shut off (unknown)", "shut off (failed)")
            assert qemu_pids([UUIDS[1]])[UUIDS[1]] == []
        assert daemon.poll() is None, "the daemon died"
        assert {p.name: p.read_bytes() for p in (root / "domains").glob("*.xml")} == before
        assert set(definitions(root)) == {"d1", "d2"}
        assert not [p.name for p in (root / "domains").iterdir() if p.name.endswith(".tmp")]

        # space again: everything works
        filler.unlink()
        await conn.define_xml(diskless_xml("d3", memory_mib=32, uuid=UUIDS[2]))
        if started:
            await d2.destroy()
        await d2.start()
        assert set(definitions(root)) == {"d1", "d2", "d3"}
        await conn.close()

        # and a daemon that starts now finds the truth, whatever the failed writes missed
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        socket.unlink()  # what the killed daemon left; the new one makes its own
        daemon = spawn_daemon(session, socket, driver=driver)
        conn = await connect_unix(socket, driver)
        assert await state_of(conn, "d1") == "running (unpaused)"
        assert await state_of(conn, "d2") == "running (booted)"
        assert await state_of(conn, "d3") == "shut off (unknown)"
        for u in UUIDS[:2]:
            assert len(qemu_pids([u])[u]) == 1
        await conn.close()
    finally:
        daemon.kill()
        daemon.wait()
        kill_qemus(UUIDS)
