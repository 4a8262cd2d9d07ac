"""What a one-shot command against a running local daemon loads: the start-up budget of
issue 13 (``virtdeck list --all`` within 1.5x ``virsh list --all``) is spent mostly on
imports, so modules the path does without must stay unloaded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.errors import VirtError
from drivers.remote.syncclient import SyncRemoteConnection

REPO = Path(__file__).resolve().parents[2]

#: Each costs a one-shot command 0.3-4 ms to import and none is needed on this path.
NOT_LOADED = (
    "typing",
    "socket",
    "selectors",
    "struct",
    "signal",
    "contextlib",
    "asyncio",
    "dataclasses",
    "inspect",
    "pathlib",
    "lxml",
    "textual",
    # the verbs in modules of their own (tui.virsh.commands loads them when they run)
    "tui.virsh.console",
    "tui.virsh.domstats",
    "tui.virsh.event",
    "tui.virsh.migrate",
)


@pytest.fixture
def session_daemon(short_tmp: Path) -> Iterator[dict[str, str]]:
    """A daemon serving test:///default where a session client looks for its socket."""
    runtime = short_tmp / "rt"
    (runtime / "virtdeck").mkdir(parents=True, mode=0o700)
    socket = runtime / "virtdeck" / "virtdeckd.sock"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PYTHONPATH": str(REPO)}
    env.pop("VIRTDECK_DEFAULT_URI", None)
    argv = [sys.executable, "-m", "drivers.daemon", "--driver", "test:///default"]
    proc = subprocess.Popen(
        [*argv, "--socket", str(socket)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # the socket file exists from bind() on, before listen(): wait for an answer
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "the daemon exited"
            try:
                SyncRemoteConnection(socket, "qemu:///session").close_now()
                break
            except VirtError:
                assert time.monotonic() < deadline, "the daemon did not answer within 30 s"
                time.sleep(0.02)
        yield env
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("words", [["list", "--all"], ["domstate", "--reason", "test"]])
def test_one_shot_commands_on_the_blocking_client_load_only_what_they_need(
    session_daemon: dict[str, str], words: list[str]
) -> None:
    code = (
        "import sys, io;"
        # what the interpreter's start-up loaded (the dev venv's editable-install finder
        # loads pathlib, for one) is not the command's doing
        "before = set(sys.modules);"
        "out = io.StringIO(); real = sys.stdout; sys.stdout = out;"
        "import tui.cli;"
        f"rc = tui.cli.main(['-c', 'qemu:///session', *{words!r}]);"
        "sys.stdout = real;"
        f"banned = {NOT_LOADED!r};"
        "new = set(sys.modules) - before;"
        "print(rc, sorted(m for m in new if m in banned or m.split('.')[0] in banned),"
        "'drivers.remote.syncclient' in sys.modules);"
        "print(out.getvalue(), end='')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=session_daemon,
        check=True,
    )
    status, _, shown = done.stdout.partition("\n")
    # 0, nothing of NOT_LOADED, and the blocking client answered (asyncio would be loaded
    # had the command fallen back to the asyncio client)
    assert status == "0 [] True", done.stderr
    assert ("test" in shown) if words[0] == "list" else shown == "running (booted)\n\n"


def test_every_verb_is_found_by_name_and_listed_once_in_help_order() -> None:
    from tui.virsh.commands import find, groups

    names = [command.name for group in groups() for command in group.commands]
    assert len(names) == len(set(names))
    for name in names:
        command = find(name)
        assert command is not None and command.name == name
    # the verbs that live in modules of their own are among them, in virsh's groups
    assert {"console", "logs", "domstats", "event", "migrate", "domjobinfo", "domjobabort"} <= set(
        names
    )
    assert find("nosuch") is None
