"""A qemu+ssh:// client run inside a network namespace by test_ssh_netns.py.

    python tests/remote/ssh_probe.py URI DOMAIN_NAME

Opens URI, lists domains, defines and starts a diskless domain, then keeps a ping in
flight and prints every event, one JSON object per line (flushed), until the connection
is lost. Times are ``time.monotonic()``, which is system-wide on Linux, so the test can
compare them with its own clock.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import drivers
from drivers.model import ConnectionClosedEvent, LifecycleEvent
from drivers.remote.client import RemoteConnection
from drivers.remote.ssh import link_connect_seconds
from tests.e2e.helpers import diskless_xml


def emit(kind: str, **data: Any) -> None:
    print(json.dumps({"kind": kind, "t": time.monotonic(), **data}), flush=True)


async def watch_events(stream: drivers.EventStream) -> None:
    async for event in stream:
        if isinstance(event, LifecycleEvent):
            emit("lifecycle", domain=event.domain, words=event.words)
        elif isinstance(event, ConnectionClosedEvent):
            emit("closed", lost=event.lost, reason=event.reason)


async def keep_pinging(conn: RemoteConnection) -> None:
    """Always one call in flight, so the cut catches one."""
    while True:
        try:
            await conn.ping()
        except drivers.ConnectionLost as err:
            emit("call_lost", error=type(err).__name__, message=str(err))
            return
        await asyncio.sleep(0.05)


async def main(uri: str, name: str) -> int:
    started = time.monotonic()
    try:
        conn = await drivers.open(uri)
    except drivers.VirtError as err:
        emit("error", error=type(err).__name__, message=str(err))
        return 1
    assert isinstance(conn, RemoteConnection)
    connect = link_connect_seconds(conn)
    emit("open", seconds=time.monotonic() - started, connect_seconds=connect)
    emit("list", names=[s.name for s in await conn.list_summaries()])
    stream = conn.events()
    watcher = asyncio.create_task(watch_events(stream))
    dom = await conn.define_xml(diskless_xml(name))
    await dom.start()
    pinger = asyncio.create_task(keep_pinging(conn))
    emit("ready")
    await asyncio.gather(watcher, pinger)
    emit("done")
    await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
