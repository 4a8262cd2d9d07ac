"""Run ``virtdeck event --loop --timestamp --all`` and drive a domain's life, in ONE process.

An embed root belongs to the one process that opened it, and test:///default lives inside
one process, so a second process could neither act on the domain nor see its events. This
helper runs the CLI's event command and the domain operations on one connection; the test
reads the CLI's output through a pipe (each line must arrive while the helper still runs)
and ends the helper with a signal.

Usage: ``python -m tests.cli.event_helper URI XMLFILE``; the exit status is the CLI's.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import drivers
from tui.virsh import Shell, run


async def _main(uri: str, xml: str) -> int:
    conn = await drivers.open(uri)
    try:
        cli = asyncio.create_task(
            run(Shell(uri, conn=conn), ["event", "--loop", "--timestamp", "--all"])
        )
        # The command subscribes before it first waits; a few turns of the loop get it there.
        for _ in range(5):
            await asyncio.sleep(0)
        dom = await conn.define_xml(xml)
        await dom.start()
        await dom.suspend()
        await dom.resume()
        await dom.destroy()
        await dom.undefine()
        return await cli
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1], Path(sys.argv[2]).read_text())))
