"""The reconnecting wrapper the TUI uses: status, snapshots and events, in order."""

from __future__ import annotations

import signal

import drivers
from drivers.api import Connection
from drivers.errors import ConnectionFailed, ConnectionLost
from drivers.model import LifecycleEvent
from drivers.reconnect import LinkState, LinkStatus, ReconnectingConnection, Snapshot, Update
from tests.remote.conftest import Session


async def test_backoff_until_the_host_answers() -> None:
    failures = 3

    async def opener(uri: str) -> Connection:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionFailed("No daemon is listening (test).")
        return await drivers.open("test:///default")

    link = ReconnectingConnection("test:///default", opener=opener, backoff=(0.01, 0.02))
    seen: list[Update] = []
    async for update in link.updates():
        seen.append(update)
        if isinstance(update, Snapshot):
            break
    states = [u.state for u in seen if isinstance(u, LinkStatus)]
    assert states == [LinkState.CONNECTING, LinkState.LOST] * 3 + [
        LinkState.CONNECTING,
        LinkState.CONNECTED,
    ]
    lost = [u for u in seen if isinstance(u, LinkStatus) and u.state is LinkState.LOST]
    assert all(u.retry_at is not None and "No daemon" in u.message for u in lost)
    snapshot = seen[-1]
    assert isinstance(snapshot, Snapshot) and "test" in [s.name for s in snapshot.summaries]
    # events follow the snapshot
    await (await link.require().lookup("test")).suspend()
    async for update in link.updates():
        assert isinstance(update, LifecycleEvent) and update.words == "Suspended Paused"
        break
    await link.close()
    assert link.status.state is LinkState.CLOSED


async def test_daemon_killed_then_back(session: Session) -> None:
    link = ReconnectingConnection("qemu:///session", backoff=(0.05,))
    updates = link.updates()
    async for update in updates:
        if isinstance(update, Snapshot):
            break
    session.kill_daemons(signal.SIGKILL)
    states: list[LinkState] = []
    async for update in updates:
        if isinstance(update, LinkStatus):
            states.append(update.state)
            if update.state is LinkState.LOST:
                assert link.conn is None
                try:
                    link.require()
                except ConnectionLost as err:
                    assert "lost" in str(err)
        if isinstance(update, Snapshot):
            break
    assert states[0] is LinkState.LOST and states[-1] is LinkState.CONNECTED
    assert link.conn is not None
    await link.close()
