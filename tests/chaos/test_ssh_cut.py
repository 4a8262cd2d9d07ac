"""Cut and restore the SSH link between two network namespaces, again and again, while a
client works and follows events over qemu+ssh://.

sshd (and through it virtdeckd and QEMU) lives in namespace h1; the client
(tests/chaos/ssh_chaos_client.py) in h2, behind a ReconnectingConnection with a 0.3 s
keepalive. The test takes h1's end of the veth down for 1.5-2.5 s at random moments, and
watches the host directly (an observer on the daemon's unix socket, which the cut does not
touch). Each cut must be reported as a lost link, each restore by a reconnect and a
snapshot equal to what the host has; no operation may be applied twice (every start the
host performed was asked for once, defines are not duplicated), and in the end every
domain runs in exactly one QEMU if it is active and in none if not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import drivers
from drivers.model import LifecycleEvent, state_words
from tests.chaos.helpers import kill_qemus, qemu_pids
from tests.conftest import require_qemu
from tests.e2e.helpers import EventRecorder
from tests.remote.conftest import Session
from tests.remote.sshd import daemon_command, start_sshd
from tests.remote.test_ssh_netns import H1_ADDR, Hosts, ip

pytestmark = pytest.mark.qemu

CLIENT = Path(__file__).with_name("ssh_chaos_client.py")
CUTS = 4
PREFIX = "c"


async def lines_of(proc: asyncio.subprocess.Process, into: list[dict[str, Any]]) -> None:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        into.append(json.loads(line))


async def wait_for(
    lines: list[dict[str, Any]], since: int, kind: str, timeout: float, **match: Any
) -> int:
    """Index of the first line after ``since`` of ``kind`` (with ``match``)."""
    deadline = time.monotonic() + timeout
    while True:
        for i in range(since, len(lines)):
            line = lines[i]
            if line["kind"] == kind and all(line.get(k) == v for k, v in match.items()):
                return i
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind} {match} within {timeout:g} s: {lines[since:]}")
        await asyncio.sleep(0.02)


async def host_states(conn: drivers.Connection) -> dict[str, list[str]]:
    return {
        s.name: [s.state.name, s.reason.name]
        for s in await conn.list_summaries()
        if s.name.startswith(PREFIX)
    }


async def test_ssh_link_cut_again_and_again(
    session: Session,
    hosts: Hosts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_qemu()
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    rng = random.Random(1313)
    sshd = start_sshd(session.base / "ssh", address=H1_ADDR, port=2222, netns=hosts.h1)
    client: asyncio.subprocess.Process | None = None
    observer: drivers.Connection | None = None
    lines: list[dict[str, Any]] = []
    reader: asyncio.Task[None] | None = None
    uuids: set[str] = set()
    try:
        uri = sshd.uri(daemon_command(session), keepalive="0.3")
        client = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", hosts.h2, sys.executable, str(CLIENT), uri, PREFIX, "3",
            "13", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=session.env(),
        )  # fmt: skip
        reader = asyncio.create_task(lines_of(client, lines))
        await wait_for(lines, 0, "snapshot", 60)  # the session daemon is up now
        observer = await drivers.open("qemu:///session")
        recorder = EventRecorder(observer)
        await asyncio.sleep(1.0)
        resyncs = 0
        for cut_no in range(CUTS):
            await asyncio.sleep(rng.uniform(0.2, 1.0))  # operations run meanwhile
            mark = len(lines)
            cut_at = time.monotonic()
            ip("-n", hosts.h1, "link", "set", hosts.veth1, "down")
            lost = await wait_for(lines, mark, "status", 10, state="lost")
            assert lines[lost]["message"], "a lost link says why"
            noticed = lines[lost]["t"] - cut_at
            await asyncio.sleep(max(0.0, rng.uniform(1.5, 2.5) - (time.monotonic() - cut_at)))
            ip("-n", hosts.h1, "link", "set", hosts.veth1, "up")
            back = await wait_for(lines, lost, "snapshot", 30)
            truth = await host_states(observer)
            snap = lines[back]["states"]
            # a call cut off may still reach the host once the link is back (its bytes
            # were on the wire): only the domains of such calls may differ here
            unsure = {
                line["domain"]
                for line in lines[mark:back]
                if line["kind"] == "op" and line["result"] in ("sent", "error")
            }
            for name in set(truth) | set(snap):
                if name not in unsure:
                    assert snap.get(name) == truth.get(name), (cut_no, name, snap, truth)
            resyncs += 1
            print(
                f"cut {cut_no}: lost noticed after {noticed:.2f} s, back after "
                f"{lines[back]['t'] - cut_at:.2f} s; uncertain calls: {sorted(unsure)}"
            )
        await asyncio.sleep(0.5)
        assert client.stdin is not None
        client.stdin.write(b"stop\n")
        await client.stdin.drain()
        await wait_for(lines, 0, "done", 30)
        assert await asyncio.wait_for(client.wait(), 10) == 0
        await asyncio.sleep(0.3)  # late events on their way to the observer

        # the client's last view is the host's
        final = next(line for line in reversed(lines) if line["kind"] == "final")["states"]
        truth = await host_states(observer)
        assert final == {n: s[0] for n, s in truth.items()}
        # nothing applied twice: each start the host performed was asked for
        ops = [line for line in lines if line["kind"] == "op"]

        def count(name: str, result: str) -> int:
            return sum(o["domain"] == name and o["op"] == "start" and o["result"] == result
                       for o in ops)  # fmt: skip

        def seen(name: str, words: str) -> int:
            return sum(
                isinstance(e, LifecycleEvent) and e.domain == name and e.words == words
                for e in recorder.events
            )

        for name in truth:
            asked, done, started = (
                count(name, "sent"),
                count(name, "ok"),
                seen(name, "Started Booted"),
            )
            assert done <= started <= asked, (name, done, started, asked)
            assert seen(name, "Defined Added") <= 1, name
        # and every domain runs once, or not at all
        for summary in await observer.list_summaries():
            if not summary.name.startswith(PREFIX):
                continue
            uuids.add(summary.uuid)
            pids = qemu_pids([summary.uuid])[summary.uuid]
            want = 1 if summary.state.is_active else 0
            words = state_words(summary.state, summary.reason)
            assert len(pids) == want, (summary.name, words, pids)
        print(
            f"{CUTS} cuts, {resyncs} resyncs, {sum(o['result'] == 'ok' for o in ops)} "
            f"operations done, {sum(o['result'] == 'error' for o in ops)} failed"
        )
        await recorder.close()
    finally:
        if client is not None and client.returncode is None:
            client.kill()
            await client.wait()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if observer is not None:
            for summary in await observer.list_summaries():
                uuids.add(summary.uuid)
            await observer.close()
        sshd.stop()
        kill_qemus(uuids)
