"""The virsh-like CLI: exact output of every verb, errors, events, start-up cost, real QEMU."""

from __future__ import annotations

import asyncio
import io
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import drivers
from drivers.api import EventHub
from drivers.errors import NotSupported
from drivers.model import (
    ConnectionClosedEvent,
    IOErrorEvent,
    PMEvent,
    RebootEvent,
    WatchdogEvent,
)
from tests.cli.helpers import DISKLESS_XML, REPO, cli, kill_leftovers, read_lines_until
from tests.conftest import require_qemu
from tui.cli import main
from tui.text import display_width, inert, inert_xml
from tui.virsh import Shell, run

TEST = ("-c", "test:///default")
TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"
BUILD_UUID = "8a2b4c6d-1e3f-4a5b-9c7d-2e4f6a8b0c33"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+0000: "

LIST_ALL = """\
 Id   Name         State
-----------------------------
 1    test         running
 2    web1         running
 3    db1          paused
 4    kernel-dev   crashed
 -    build        shut off

"""


def virtdeck(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``virtdeck -c test:///default ARGS`` in this process."""
    status = main([*TEST, *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- list -------------------------------------------------------------------------------


def test_list_all_is_virshs_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert virtdeck(capsys, "list", "--all") == (0, LIST_ALL, "")


def test_list_shows_active_domains_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    expected = (
        " Id   Name         State\n"
        "----------------------------\n"
        " 1    test         running\n"
        " 2    web1         running\n"
        " 3    db1          paused\n"
        " 4    kernel-dev   crashed\n"
        "\n"
    )
    assert virtdeck(capsys, "list") == (0, expected, "")


def test_list_names_and_uuids(capsys: pytest.CaptureFixture[str]) -> None:
    assert virtdeck(capsys, "list", "--all", "--name") == (
        0,
        "test\nweb1\ndb1\nkernel-dev\nbuild\n\n",
        "",
    )
    status, out, _ = virtdeck(capsys, "list", "--all", "--uuid", "--name")
    assert status == 0
    assert out.splitlines()[0] == f"{TEST_UUID} test"
    assert out.splitlines()[4] == f"{BUILD_UUID} build"
    # ids alone: only running domains have one
    assert virtdeck(capsys, "list", "--all", "--id") == (0, "1\n2\n3\n4\n\n", "")


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        (("--state-shutoff",), ["build"]),
        (("--state-running",), ["test", "web1"]),
        (("--state-paused",), ["db1"]),
        (("--all", "--state-other"), ["kernel-dev"]),
        (("--all", "--state-running", "--state-shutoff"), ["test", "web1", "build"]),
        (("--inactive",), ["build"]),
        (("--all", "--transient"), []),
        (("--all", "--persistent"), ["test", "web1", "db1", "kernel-dev", "build"]),
    ],
)
def test_list_filters(
    capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], names: list[str]
) -> None:
    status, out, _ = virtdeck(capsys, "list", "--name", *flags)
    assert status == 0
    assert out == "".join(f"{name}\n" for name in names) + "\n"


def test_list_state_shutoff_table(capsys: pytest.CaptureFixture[str]) -> None:
    expected = " Id   Name    State\n------------------------\n -    build   shut off\n\n"
    assert virtdeck(capsys, "list", "--state-shutoff") == (0, expected, "")


def test_list_quiet_drops_header_and_blank_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", *TEST, "list", "--state-paused"]) == 0
    assert capsys.readouterr().out == " 3   db1   paused\n"


def test_list_title_column(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    xml = DISKLESS_XML.replace("<name>c1</name>", "<name>c1</name><title>Build box</title>")
    (tmp_path / "c1.xml").write_text(xml)
    assert virtdeck(capsys, "define", str(tmp_path / "c1.xml"))[0] == 0
    status, out, _ = virtdeck(capsys, "list", "--inactive", "--title")
    assert status == 0
    assert out == (
        " Id   Name    State      Title\n"
        "------------------------------------\n"
        " -    build   shut off   \n"
        " -    c1      shut off   Build box\n"
        "\n"
    )


def test_list_table_and_name_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert virtdeck(capsys, "list", "--table", "--name") == (
        1,
        "\n",
        "error: Options --table and --name are mutually exclusive\n",
    )


# --- one domain: information --------------------------------------------------------------


def test_dominfo_of_a_shut_off_domain(capsys: pytest.CaptureFixture[str]) -> None:
    used = asyncio.run(_used_memory("build"))
    expected = (
        "Id:             -\n"
        "Name:           build\n"
        f"UUID:           {BUILD_UUID}\n"
        "OS Type:        hvm\n"
        "State:          shut off\n"
        "CPU(s):         1\n"
        "Max memory:     1048576 KiB\n"
        f"Used memory:    {used} KiB\n"
        "Persistent:     yes\n"
        "Autostart:      disable\n"
        "Managed save:   no\n"
        "\n"
    )
    assert virtdeck(capsys, "dominfo", "build") == (0, expected, "")


async def _used_memory(name: str) -> int:
    conn = await drivers.open("test:///default")
    try:
        return (await (await conn.lookup(name)).info()).memory_kib
    finally:
        await conn.close()


def test_dominfo_of_a_running_domain(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = virtdeck(capsys, "dominfo", "1")
    assert (status, err) == (0, "")
    pattern = (
        r"Id:             1\n"
        r"Name:           test\n"
        rf"UUID:           {TEST_UUID}\n"
        r"OS Type:        hvm\n"
        r"State:          running\n"
        r"CPU\(s\):         2\n"
        r"CPU time:       \d+\.\ds\n"
        r"Max memory:     8388608 KiB\n"
        r"Used memory:    8388608 KiB\n"
        r"Persistent:     yes\n"
        r"Autostart:      disable\n"
        r"Managed save:   no\n"
        r"\n"
    )
    assert re.fullmatch(pattern, out), out


@pytest.mark.parametrize(
    ("name", "plain", "reason"),
    [
        ("test", "running", "running (booted)"),
        ("db1", "paused", "paused (user)"),
        ("kernel-dev", "crashed", "crashed (panicked)"),
        ("build", "shut off", "shut off (unknown)"),
    ],
)
def test_domstate(capsys: pytest.CaptureFixture[str], name: str, plain: str, reason: str) -> None:
    assert virtdeck(capsys, "domstate", name) == (0, f"{plain}\n\n", "")
    assert virtdeck(capsys, "domstate", "--reason", name) == (0, f"{reason}\n\n", "")
    assert virtdeck(capsys, "domstate", f"--domain={name}", "--reason") == (0, f"{reason}\n\n", "")


def test_domains_are_named_by_name_id_or_uuid(capsys: pytest.CaptureFixture[str]) -> None:
    assert virtdeck(capsys, "domid", "test") == (0, "1\n\n", "")
    assert virtdeck(capsys, "domid", TEST_UUID) == (0, "1\n\n", "")
    assert virtdeck(capsys, "domuuid", "test") == (0, f"{TEST_UUID}\n\n", "")
    assert virtdeck(capsys, "domid", BUILD_UUID) == (0, "-\n\n", "")
    assert virtdeck(capsys, "domuuid", "1") == (0, f"{TEST_UUID}\n\n", "")
    assert virtdeck(capsys, "domname", "2") == (0, "web1\n\n", "")
    assert virtdeck(capsys, "domname", BUILD_UUID) == (0, "build\n\n", "")


def test_domname_does_not_take_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    # As in virsh: domname converts an id or UUID, so a name is not looked up.
    assert virtdeck(capsys, "domname", "web1") == (
        1,
        "\n",
        "error: No domain has the id or UUID 'web1'.\n",
    )


def test_dumpxml(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = virtdeck(capsys, "dumpxml", "test")
    assert status == 0
    assert out.startswith('<domain type="test" id="1">\n  <name>test</name>\n')
    assert out.endswith("</domain>\n\n")
    status, out, _ = virtdeck(capsys, "dumpxml", "--inactive", "test")
    assert status == 0
    assert out.startswith('<domain type="test">\n')


# --- one domain: actions ------------------------------------------------------------------


def test_lifecycle_messages(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "c1.xml"
    path.write_text(DISKLESS_XML)
    steps = [
        (("define", str(path)), f"Domain 'c1' defined from {path}\n\n", None),
        (("start", "c1"), "Domain 'c1' started\n\n", "running (booted)"),
        (("suspend", "c1"), "Domain 'c1' suspended\n\n", "paused (user)"),
        (("resume", "c1"), "Domain 'c1' resumed\n\n", "running (unpaused)"),
        (("reboot", "c1"), "Domain 'c1' is being rebooted\n\n", None),
        (("reset", "c1"), "Domain 'c1' was reset\n\n", None),
        (("shutdown", "c1"), "Domain 'c1' is being shutdown\n\n", None),
        (("destroy", "c1"), "Domain 'c1' destroyed\n\n", "shut off (destroyed)"),
        (("start", "--paused", "c1"), "Domain 'c1' started\n\n", "paused (user)"),
        (("destroy", "c1"), "Domain 'c1' destroyed\n\n", None),
        (("undefine", "c1"), "Domain 'c1' has been undefined\n\n", None),
    ]
    for args, message, state in steps:
        assert virtdeck(capsys, *args) == (0, message, ""), args
        if state is not None:
            assert virtdeck(capsys, "domstate", "--reason", "c1") == (0, f"{state}\n\n", "")
    assert virtdeck(capsys, "list", "--all") == (0, LIST_ALL, "")


def test_messages_name_the_domain_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    assert virtdeck(capsys, "destroy", "2") == (0, "Domain '2' destroyed\n\n", "")
    assert virtdeck(capsys, "start", BUILD_UUID) == (0, "Domain 'build' started\n\n", "")


def test_quiet_actions_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", *TEST, "suspend", "test"]) == 0
    assert capsys.readouterr().out == ""


# --- the host -----------------------------------------------------------------------------


def test_uri_hostname_version(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    assert virtdeck(capsys, "uri") == (0, "test:///default\n\n", "")
    assert virtdeck(capsys, "hostname") == (0, f"{socket.gethostname()}\n\n", "")
    status, out, _ = virtdeck(capsys, "version")
    assert status == 0
    assert re.fullmatch(
        r"Compiled against library: virtdeck \S+\n"
        r"Using library: virtdeck \S+\n"
        r"Using API: TEST \S+\n"
        r"Running hypervisor: TEST \S+\n\n",
        out,
    ), out


def test_default_uri_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIRTDECK_DEFAULT_URI", "test:///default")
    assert main(["uri"]) == 0
    assert capsys.readouterr().out == "test:///default\n\n"


def test_default_uri_is_the_session_daemon(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    async def fake_open(uri: str) -> drivers.Connection:
        opened.append(uri)
        raise NotSupported(f"'{uri}' is not available in this test.")

    monkeypatch.delenv("VIRTDECK_DEFAULT_URI", raising=False)
    monkeypatch.setattr(drivers, "open", fake_open)
    assert main(["list"]) == 1
    assert opened == ["qemu:///session"]
    assert capsys.readouterr() == (
        "\n",
        "error: 'qemu:///session' is not available in this test.\n",
    )


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message", "blank"),
    [
        (("nope",), "unknown command: 'nope'", False),
        (("start",), "command 'start' requires <domain> option", False),
        (("list", "--bogus"), "command 'list' doesn't support option --bogus", False),
        (("domstate", "test", "extra"), "unexpected data 'extra'", False),
        (("domstate", "--reason=yes", "test"), "invalid '=' after option --reason", False),
        (("event", "--all", "--timeout"), "expected syntax: --timeout <number>", False),
        (("domstate", "test", "--domain", "x"), "option --domain already seen", False),
        (
            ("dominfo", "ghost"),
            "Domain 'ghost' not found; 'virtdeck list --all' shows the defined domains.",
            True,
        ),
        (("start", "test"), "Domain 'test' is already running.", True),
        (("event",), "one of --list, --all, or --event <type> is required", True),
        (("event", "--event", "nope"), "unknown event type nope", True),
        (
            ("event", "--all", "--timeout", "0"),
            "Numeric value '0' for <timeout> option is malformed or out of range",
            True,
        ),
        (
            ("event", "--all", "--event", "reboot"),
            "Options --all and --event are mutually exclusive",
            True,
        ),
        (("help", "nope"), "command or command group 'nope' doesn't exist", True),
        (
            ("define", "/nonexistent/x.xml"),
            "Cannot read '/nonexistent/x.xml': No such file or directory.",
            True,
        ),
    ],
)
def test_errors(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str, blank: bool
) -> None:
    # virsh ends every command it ran with a blank line, failed or not; a command line it
    # could not parse never ran.
    assert virtdeck(capsys, *args) == (1, "\n" if blank else "", f"error: {message}\n")


def test_bad_global_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bogus"]) == 1
    assert capsys.readouterr().err == "error: unsupported option '--bogus'. See --help.\n"


def test_errors_never_show_a_traceback() -> None:
    result = cli("-c", "bogus://x", "list")
    assert result.returncode == 1
    assert result.stdout == "\n"
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


# --- help ---------------------------------------------------------------------------------


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = virtdeck(capsys, "help")
    assert status == 0
    assert out.startswith("Grouped commands:\n\n Domain Management (help keyword 'domain'):\n")
    assert "    list                           list domains\n" in out
    expected = (
        "  NAME\n"
        "    start - start a (previously defined) inactive domain\n"
        "\n"
        "  SYNOPSIS\n"
        "    start <domain> [--paused]\n"
        "\n"
        "  DESCRIPTION\n"
        "    Start a domain via a fresh boot.\n"
        "\n"
        "  OPTIONS\n"
        "    [--domain] <string>  name of the inactive domain\n"
        "    --paused         leave the guest paused after start\n"
        "\n"
    )
    assert virtdeck(capsys, "help", "start") == (0, expected, "")
    assert virtdeck(capsys, "start", "--help") == (0, expected, "")
    status, out, _ = virtdeck(capsys, "help", "monitor")
    assert status == 0
    assert out.startswith(" Domain Monitoring (help keyword 'monitor'):\n    dominfo ")


def test_no_command_opens_the_tui(monkeypatch: pytest.MonkeyPatch) -> None:
    import tui.app

    calls: list[tuple[list[str], bool, str | None]] = []

    def fake_run(uris: list[str], *, demo: bool, theme: str | None) -> int:
        calls.append((list(uris), demo, theme))
        return 0

    monkeypatch.setattr(tui.app, "run", fake_run)
    assert main(["--demo"]) == 0
    assert (
        main(["-c", "test:///default", "-c", "qemu:///session", "--theme", "virtdeck-light"]) == 0
    )
    assert calls == [
        ([], True, None),
        (["test:///default", "qemu:///session"], False, "virtdeck-light"),
    ]


def test_no_command_without_qemu_offers_the_demo(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.delenv("VIRTDECK_DEFAULT_URI", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main([]) == 1
    assert "virtdeck --demo" in capsys.readouterr().err


def test_demo_is_the_test_driver(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--demo", "uri"]) == 0
    assert capsys.readouterr().out == "test:///default\n\n"


# --- inert output -------------------------------------------------------------------------


def test_inert_escapes_terminal_controls() -> None:
    assert inert("a\x1b]0;pwned\x07b") == "a\\x1b]0;pwned\\x07b"
    assert inert("csi\x9b2J del\x7f") == "csi\\x9b2J del\\x7f"
    assert inert("line\nnext\ttab\r") == "line\nnext\ttab\\x0d"
    assert inert("line\nnext\ttab", one_line=True) == "line\\x0anext\\x09tab"
    assert inert("rtl\u202egnp.exe \udcff") == "rtl\\u202egnp.exe \\udcff"
    assert inert("plain ünïcödé 名前") == "plain ünïcödé 名前"
    assert inert_xml("<t>a\x9bb\u202ec</t>\n") == "<t>a&#x9b;b&#x202e;c</t>\n"
    assert display_width("名前ab") == 6


def test_guest_text_is_printed_inert(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    xml = DISKLESS_XML.replace("<name>c1</name>", "<name>c1</name><title>x&#x9b;2Jy</title>")
    (tmp_path / "c1.xml").write_text(xml)
    assert virtdeck(capsys, "define", str(tmp_path / "c1.xml"))[0] == 0
    status, out, _ = virtdeck(capsys, "list", "--inactive", "--title")
    assert status == 0
    assert " -    c1      shut off   x\\x9b2Jy\n" in out
    status, out, _ = virtdeck(capsys, "dumpxml", "c1")
    assert "<title>x&#x9b;2Jy</title>" in out
    assert "\x9b" not in out
    status, _, err = virtdeck(capsys, "dominfo", "ghost\x1b[2J")
    assert err == (
        "error: Domain 'ghost\\x1b[2J' not found; 'virtdeck list --all' shows the defined "
        "domains.\n"
    )


# --- events -------------------------------------------------------------------------------


async def _event_command(*args: str) -> tuple[asyncio.Task[int], io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    task = asyncio.create_task(run(Shell("test:///default", out=out, err=err), ["event", *args]))
    for _ in range(5):  # let it subscribe before the test acts
        await asyncio.sleep(0)
    return task, out, err


async def test_event_one_shot_prints_the_first_event() -> None:
    task, out, _ = await _event_command("--all")
    conn = await drivers.open("test:///default")
    try:
        await (await conn.lookup("test")).suspend()
        assert await asyncio.wait_for(task, 5) == 0
    finally:
        await conn.close()
    assert out.getvalue() == (
        "event 'lifecycle' for domain 'test': Suspended Paused\nevents received: 1\n\n"
    )


async def test_event_loop_filters_and_times_out() -> None:
    task, out, _ = await _event_command(
        "--all", "--loop", "--timestamp", "--domain", "web1", "--timeout", "1"
    )
    conn = await drivers.open("test:///default")
    try:
        await (await conn.lookup("test")).suspend()  # another domain: filtered out
        web1 = await conn.lookup("web1")
        await web1.suspend()
        await web1.resume()
        assert await asyncio.wait_for(task, 5) == 0
    finally:
        await conn.close()
    assert re.fullmatch(
        f"{STAMP}event 'lifecycle' for domain 'web1': Suspended Paused\n"
        f"{STAMP}event 'lifecycle' for domain 'web1': Resumed Unpaused\n"
        "event loop timed out\n"
        "events received: 2\n"
        "\n",
        out.getvalue(),
    ), out.getvalue()


async def test_event_type_filter() -> None:
    task, out, _ = await _event_command("--event", "reboot", "--loop", "--timeout", "1")
    conn = await drivers.open("test:///default")
    try:
        web1 = await conn.lookup("web1")
        await web1.suspend()
        await web1.resume()
        await web1.reset()
        assert await asyncio.wait_for(task, 5) == 0
    finally:
        await conn.close()
    assert out.getvalue() == (
        "event 'reboot' for domain 'web1'\nevent loop timed out\nevents received: 1\n\n"
    )


async def test_event_timeout_without_events_fails_like_virsh() -> None:
    task, out, err = await _event_command("--all", "--timeout", "1")
    assert await asyncio.wait_for(task, 5) == 1
    assert out.getvalue() == "event loop timed out\nevents received: 0\n\n"
    assert err.getvalue() == ""


async def test_event_lost_connection_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = await drivers.open("test:///default")
    hub = EventHub()
    monkeypatch.setattr(conn, "events", hub.subscribe)
    out, err = io.StringIO(), io.StringIO()
    task = asyncio.create_task(
        run(Shell("test:///default", out=out, err=err, conn=conn), ["event", "--all", "--loop"])
    )
    for _ in range(5):
        await asyncio.sleep(0)
    hub.publish(RebootEvent(domain="test", uuid=TEST_UUID))
    hub.close(ConnectionClosedEvent(reason="the daemon stopped.", lost=True))
    try:
        assert await asyncio.wait_for(task, 5) == 1
    finally:
        await conn.close()
    assert out.getvalue() == "event 'reboot' for domain 'test'\nevents received: 1\n\n"
    assert err.getvalue() == (
        "error: The connection to test:///default was lost: the daemon stopped.\n"
    )


def test_event_lines_for_other_event_kinds() -> None:
    from tui.virsh.formats import event_lines

    assert event_lines(WatchdogEvent(action="reset", domain="d", uuid=TEST_UUID)) == [
        ("watchdog", "event 'watchdog' for domain 'd': reset\n")
    ]
    assert event_lines(PMEvent(phase="suspend", domain="d", uuid=TEST_UUID)) == [
        ("pm-suspend", "event 'pm-suspend' for domain 'd'\n")
    ]
    assert event_lines(
        IOErrorEvent(domain="d", uuid=TEST_UUID, device="virtio-disk0", action="stop", reason="eio")
    ) == [
        ("io-error", "event 'io-error' for domain 'd':  (virtio-disk0) pause\n"),
        ("io-error-reason", "event 'io-error' for domain 'd':  (virtio-disk0) pause due to eio\n"),
    ]


def test_event_list(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = virtdeck(capsys, "event", "--list")
    assert status == 0
    assert out.startswith("lifecycle\nreboot\nrtc-change\n")


def _event_helper(uri: str, xml_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.cli.event_helper", uri, str(xml_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )


LIFECYCLE = [
    "Defined Added",
    "Resumed Unpaused",
    "Started Booted",
    "Suspended Paused",
    "Resumed Unpaused",
    "Shutdown Finished after host request",
    "Stopped Destroyed",
    "Undefined Removed",
]


def _check_event_stream(proc: subprocess.Popen[bytes], signum: int, timeout: float) -> None:
    """Lines arrive through the pipe while the process runs; a signal ends it cleanly."""
    try:
        lines = read_lines_until(proc, lambda got: len(got) >= len(LIFECYCLE), timeout)
        for line, words in zip(lines, LIFECYCLE, strict=True):
            assert re.fullmatch(f"{STAMP}event 'lifecycle' for domain 'c1': {words}", line), line
        proc.send_signal(signum)
        rest, errors = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert errors.decode() == ""
    assert rest.decode() == f"event loop interrupted\nevents received: {len(LIFECYCLE)}\n\n"
    assert proc.returncode == 0


def test_event_loop_through_a_pipe_ends_on_sigint(tmp_path: Path) -> None:
    (tmp_path / "c1.xml").write_text(DISKLESS_XML)
    _check_event_stream(_event_helper("test:///default", tmp_path / "c1.xml"), signal.SIGINT, 30)


@pytest.mark.qemu
def test_event_loop_on_real_qemu_ends_on_sigterm(short_tmp: Path) -> None:
    require_qemu()
    (short_tmp / "c1.xml").write_text(DISKLESS_XML)
    root = short_tmp / "root"
    try:
        proc = _event_helper(f"qemu:///embed?root={root}", short_tmp / "c1.xml")
        _check_event_stream(proc, signal.SIGTERM, 60)
    finally:
        kill_leftovers(root)


# --- start-up cost and real QEMU ----------------------------------------------------------


def test_importing_the_cli_loads_nothing_heavy() -> None:
    code = (
        "import sys, tui.cli;"
        "heavy = ('textual', 'rich', 'lxml', 'drivers', 'asyncio', 'tui.virsh', 'qemu');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_test_driver_command_loads_no_ui_and_no_qemu_driver() -> None:
    code = (
        "import sys, contextlib, io, tui.cli;"
        "f = io.StringIO();"
        "ctx = contextlib.redirect_stdout(f);"
        "ctx.__enter__();"
        "tui.cli.main(['-c', 'test:///default', 'list', '--all']);"
        "ctx.__exit__(None, None, None);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'qemu')"
        " or m in ('drivers.qemu.driver', 'drivers.qemu.monitor', 'drivers.remote')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "[]"


def test_list_all_in_a_fresh_process() -> None:
    result = cli("-c", "test:///default", "list", "--all")
    assert (result.returncode, result.stdout, result.stderr) == (0, LIST_ALL, "")


@pytest.mark.qemu
def test_domain_lifecycle_through_separate_cli_runs(short_tmp: Path) -> None:
    """Each run opens the embed root, acts and lets go; the guest outlives every run."""
    require_qemu()
    root = short_tmp / "root"
    xml = short_tmp / "c1.xml"
    xml.write_text(DISKLESS_XML)
    uri = f"qemu:///embed?root={root}"
    steps = [
        (("define", str(xml)), f"Domain 'c1' defined from {xml}\n\n"),
        (("start", "c1"), "Domain 'c1' started\n\n"),
        (("domstate", "--reason", "c1"), "running (booted)\n\n"),
        (("domid", "c1"), "1\n\n"),
        (("suspend", "c1"), "Domain 'c1' suspended\n\n"),
        (("domstate", "--reason", "c1"), "paused (user)\n\n"),
        (("resume", "1"), "Domain '1' resumed\n\n"),
        (("domstate", "--reason", "c1"), "running (unpaused)\n\n"),
        (("destroy", "c1"), "Domain 'c1' destroyed\n\n"),
        # (not --reason: like libvirtd after a restart, a new driver instance does not
        # know why an inactive domain stopped)
        (("domstate", "c1"), "shut off\n\n"),
        (("undefine", "c1"), "Domain 'c1' has been undefined\n\n"),
        (("list", "--all"), " Id   Name   State\n--------------------\n\n"),
    ]
    try:
        for args, expected in steps:
            result = cli("-c", uri, *args)
            assert (result.returncode, result.stdout, result.stderr) == (0, expected, ""), args
    finally:
        kill_leftovers(root)
