"""A QEMU that dies before its monitor answers: the start says how it ended.

Found by the chaos tier (tests/chaos/test_qemu_kill.py): a QEMU killed during a start was
reported as "Failed to establish session: EOFError", which tells a user nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers
from drivers.errors import HypervisorError
from tests.e2e.helpers import diskless_xml, state_of

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("kill -9 $$", "its process was killed by SIGKILL before its monitor answered"),
        ("exit 3", "its process exited with status 3 before its monitor answered"),
    ],
)
async def test_a_qemu_that_dies_silently_is_described(
    embed_root: Path, short_tmp: Path, script: str, words: str
) -> None:
    emulator = short_tmp / "fake-qemu"
    emulator.write_text(f"#!/bin/sh\n{script}\n")
    emulator.chmod(0o755)
    conn = await drivers.open(f"qemu:///embed?root={embed_root}&emulator={emulator}")
    try:
        dom = await conn.define_xml(diskless_xml("q1"))
        with pytest.raises(HypervisorError) as caught:
            await dom.start()
        message = str(caught.value)
        assert message.startswith(f"QEMU could not start domain 'q1': {words} (full log: ")
        assert await state_of(conn, "q1") == "shut off (failed)"
    finally:
        await conn.close()
