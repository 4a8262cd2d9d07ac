"""Waiting for a QEMU process: several waiters, and a close in the middle.

Found by the chaos tier (tests/chaos/test_daemon_kill.py): a destroy racing the end of the
domain failed with "File descriptor 14 is used by transport": a wait in progress removed
the reader of a pidfd that close() had already closed, and whose number a new client
socket had taken meanwhile.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

from drivers.qemu.process import QemuProcess


async def test_waits_survive_a_close_and_fd_reuse(tmp_path: Path) -> None:
    process = QemuProcess.spawn(["sleep", "30"], tmp_path / "log")
    pidfd = process._pidfd
    assert pidfd is not None
    first = asyncio.create_task(process.wait(10))
    second = asyncio.create_task(process.wait(10))
    await asyncio.sleep(0.05)
    process.close()  # what detaching a domain does while a destroy still waits
    # a new connection takes the pidfd's number
    loop = asyncio.get_running_loop()
    transports = []
    for _ in range(4):
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        transports.append((transport, b))
    assert pidfd in [t.get_extra_info("socket").fileno() for t, _ in transports]
    QemuProcess(process.pid).signal(signal.SIGKILL)
    assert await asyncio.wait_for(first, 15) is True
    assert await asyncio.wait_for(second, 15) is True
    for transport, b in transports:
        transport.close()
        b.close()


async def test_two_waiters_both_wake_on_exit(tmp_path: Path) -> None:
    process = QemuProcess.spawn(["sleep", "30"], tmp_path / "log")
    waits = [asyncio.create_task(process.wait(10)) for _ in range(2)]
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    process.signal(signal.SIGKILL)
    assert await asyncio.gather(*waits) == [True, True]
    # both woke on the pidfd, not at the end of their timeout
    assert asyncio.get_running_loop().time() - started < 2
    process.close()
