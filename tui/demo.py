"""``virtdeck --demo``: three simulated hosts, so a newcomer sees a populated screen.

``demo`` is ``test:///default`` (shared by every connection in this process); ``lab`` (12
domains, protected) and ``edge`` (4 domains, read-only) are ``test:///PATH.xml`` node
files written to the cache directory. Nothing here needs QEMU.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.errors import ConnectionLost
from drivers.fsutil import atomic_write
from drivers.model import DomainState, JobInfo, JobPhase
from drivers.test import driver as test_driver
from tui.config import HostConfig, HostMode, cache_dir

if TYPE_CHECKING:
    from drivers.api import Connection
    from drivers.model import ConsoleLine
    from tui.app import VirtdeckApp
    from tui.screens.drain import DrainScreen

# (name, MiB, vCPUs, virDomainState number: 1 running, 3 paused, 5 shut off, 6 crashed)
LAB: tuple[tuple[str, int, int, int], ...] = (
    ("web-01", 2048, 2, 1),
    ("web-02", 2048, 2, 1),
    ("web-03", 2048, 2, 5),
    ("api-01", 4096, 4, 1),
    ("db-primary", 16384, 8, 1),
    ("db-replica", 16384, 8, 3),
    ("cache", 1024, 1, 1),
    ("ci-runner-1", 8192, 4, 1),
    ("ci-runner-2", 8192, 4, 5),
    ("mail", 1024, 1, 5),
    ("backup", 2048, 2, 6),
    ("win-test", 6144, 4, 5),
)
EDGE: tuple[tuple[str, int, int, int], ...] = (
    ("gw-north", 512, 1, 1),
    ("gw-south", 512, 1, 1),
    ("sensor-hub", 1024, 2, 3),
    ("edge-cache", 2048, 2, 5),
)


def _uuid(host: str, name: str) -> str:
    digest = hashlib.sha256(f"virtdeck-demo/{host}/{name}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


def _mac(host: str, name: str) -> str:
    digest = hashlib.sha256(f"virtdeck-demo-mac/{host}/{name}".encode()).hexdigest()
    return "52:54:00:" + ":".join(digest[i : i + 2] for i in (0, 2, 4))


#: The hosts' memory in KiB: lab is the big one, where demo's guests can be migrated to.
MEMORY_KIB = {"lab": 256 << 20, "edge": 16 << 20}


def node_xml(host: str, domains: tuple[tuple[str, int, int, int], ...]) -> str:
    """A test-driver ``<node>`` document with ``host``'s ``domains``."""
    return test_driver.node_xml(
        (
            test_driver.domain_xml(
                name,
                _uuid(host, name),
                mib,
                vcpus,
                mac=_mac(host, name),
                vnc=vcpus >= 2,
                panic=state == DomainState.CRASHED,
                runstate=DomainState(state),
            )
            for name, mib, vcpus, state in domains
        ),
        memory_kib=MEMORY_KIB.get(host),
    )


def _write(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    atomic_write(path, text)


def demo_hosts(directory: Path | None = None) -> tuple[HostConfig, ...]:
    """The demo's hosts, writing their node files under ``directory`` (default: the cache)."""
    directory = (directory or cache_dir() / "demo").resolve()
    lab = directory / "lab.xml"
    edge = directory / "edge.xml"
    _write(lab, node_xml("lab", LAB))
    _write(edge, node_xml("edge", EDGE))
    return (
        HostConfig("test:///default", "demo", saved=False),
        HostConfig(f"test://{lab}", "lab", mode=HostMode.PROTECTED, saved=False),
        HostConfig(f"test://{edge}", "edge", mode=HostMode.READ_ONLY, saved=False),
    )


# --- fixed migration figures, for the screenshots and snapshot tests ------------------------


def migration_figures() -> JobInfo:
    """The figures of web1's migration a moment into its first pass (2 GiB guest)."""
    return JobInfo(
        type="unbounded",
        operation="outgoing migration",
        phase=JobPhase.PERFORM,
        status="active",
        elapsed_ms=412,
        ram_total=2 << 30,
        ram_transferred=97 << 20,
        ram_remaining=1190 << 20,
        ram_rate=238e6,
        dirty_rate=1840,
        iterations=1,
        expected_downtime_ms=300,
        setup_ms=1,
    )


def freeze_drain(screen: DrainScreen) -> None:
    """Show a drain of ``screen``'s host half-way, with fixed figures (its plan is made):
    the first domain done, the second migrating, the rest waiting."""
    from drivers.records import replace
    from tui.migration import JobState, JobView, MigrationJob, MigrationRun

    jobs = [
        MigrationJob(r.name, r.uuid, screen.host, target, screen.options, r.paused)
        for r in screen.rows
        if (target := screen.plan.get(r.uuid)) is not None
    ]

    def no_connection(host: str) -> Connection:
        raise ConnectionLost("a frozen drain connects nowhere")

    run = MigrationRun(
        jobs, parallel=2, connect=no_connection, report=lambda view: None, clock=lambda: 1000.0
    )
    run.started = 998.1
    done = replace(migration_figures(), type="completed", phase=JobPhase.COMPLETED)
    states: list[tuple[JobState, JobInfo | None, int | None]] = [
        (JobState.DONE, replace(done, downtime_ms=2, ram_remaining=0), 1412),
        (JobState.MIGRATING, migration_figures(), None),
    ]
    for index, view in enumerate(run.views):
        state, info, elapsed = (
            states[index] if index < len(states) else (JobState.WAITING, None, None)
        )
        run.views[index] = frozen = JobView(
            view.index,
            view.name,
            view.uuid,
            view.source,
            view.target,
            state=state,
            info=info,
            elapsed_ms=elapsed,
        )
        screen.post_message(screen.Updated(frozen))
    screen.migration_run = run


# --- fixed statistics and console output, for the screenshots and snapshot tests -----------


def fill_stats(app: VirtdeckApp, seconds: int = 300) -> None:
    """Give every test-driver host of ``app`` ``seconds`` of statistics history, ending at
    the app's clock, computed as its simulation would have sent them (with a frozen clock
    the live samples then change nothing)."""
    from drivers.test.driver import TestConnection
    from drivers.test.simstats import sample

    now = int(app.clock.wall())
    for name, link in app.links.items():
        conn = link.link.conn
        if not isinstance(conn, TestConnection):
            continue
        host = app.store.hosts.get(name)
        if host is None:
            continue
        host.figures = None
        for row in app.store.host_rows(name):
            row.figures = None
        registry = conn.registry
        runtimes = registry.sorted()
        for second in range(now - seconds + 1, now + 1):
            app.apply_stats(name, sample(runtimes, float(second), registry.cpus, registry.memory))


#: What the console snapshot shows: a boot, a few commands, colours (raw guest bytes).
CONSOLE_OUTPUT = (
    b"\x1b[H\x1b[2J"
    b"[    1.020304] EXT4-fs (vda1): mounted filesystem with ordered data mode\r\n"
    b"[    1.200000] Run /sbin/init as init process\r\n"
    b"\x1b[32m[  OK  ]\x1b[0m Reached target \x1b[1mMulti-User System\x1b[0m.\r\n"
    b"VIRTDECK-GUEST-READY uptime=1.21 kernel=6.1.0-virtdeck-sim\r\n\r\n"
    b"Debian GNU/Linux 12 web1 ttyS0 (simulated by virtdeck's test driver)\r\n\r\n"
    b"web1 login: root (automatic login)\r\n"
    b"root@web1:~# ping\r\nVIRTDECK-PONG\r\n"
    b"root@web1:~# colors\r\n"
    + "  ".join(f"\x1b[{30 + n}m{n}\x1b[0m \x1b[{90 + n}m{n + 8}\x1b[0m" for n in range(8)).encode()
    + b"  \x1b[1mbold\x1b[0m \x1b[4munderline\x1b[0m \x1b[7mreverse\x1b[0m\r\n"
    b"root@web1:~# title web1 (installer)\r\n\x1b]0;web1 (installer)\x07"
    b"root@web1:~# uname -a\r\nLinux web1 6.1.0-virtdeck-sim x86_64 GNU/Linux\r\n"
    b"root@web1:~# "
)


def console_log_lines(start: float) -> list[ConsoleLine]:
    """A fixed console log for the logs view's snapshot: a boot read after the fact
    (inexact times), then lines as they came, one with colour codes."""
    from drivers.model import ConsoleLine

    lines = [
        ConsoleLine(start, "SeaBIOS (version 1.16.2-virtdeck)", False),
        ConsoleLine(start, "Booting from Hard Disk...", False),
        ConsoleLine(start, "[    0.000000] Linux version 6.1.0-virtdeck-sim #1 SMP", False),
        ConsoleLine(start, "[    0.412345] Serial: 8250/16550 driver, 4 ports", False),
        ConsoleLine(start, "[    1.020304] EXT4-fs (vda1): mounted filesystem", False),
        ConsoleLine(start, "\x1b[32m[  OK  ]\x1b[0m Reached target Multi-User System.", False),
        ConsoleLine(start, "VIRTDECK-GUEST-READY uptime=1.21 kernel=6.1.0-virtdeck-sim", False),
        ConsoleLine(start, "", False),
        ConsoleLine(start, "web1 login: root (automatic login)", False),
    ]
    texts = [
        "root@web1:~# ping",
        "VIRTDECK-PONG",
        "root@web1:~# uptime",
        " up 3:00,  1 user,  load average: 0.08, 0.03, 0.01",
        "[ 10801.123456] virtio_net virtio0 enp1s0: link up",
        "root@web1:~# sh systemctl restart nginx",
        "VIRTDECK-DONE rc=0",
        "root@web1:~# ping",
        "VIRTDECK-PONG",
        "\x1b]0;pwned\x07root@web1:~# \x1b[2Jready for more",
    ]
    for index, text in enumerate(texts):
        lines.append(ConsoleLine(start + 3600 + 61.25 * index, text, True))
    return lines
