"""Fuzzing the virtdeck CLI: random command lines against test:///default.

Command names (mostly real), their own options and other commands' options, and values
from a pool of domain names, ids, UUIDs, files and nasty strings. Whatever the words,
``virtdeck`` must return an exit status like virsh's (0, or 1 with an ``error:`` line on
stderr), never raise, never print a traceback or a terminal escape, and never hang.
Interactive commands (console, logs --follow, event without a timeout) are left out or
bounded, since waiting is what they are for.
"""

from __future__ import annotations

import contextlib
import io
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.cli import main
from tui.virsh.commands import groups

EXAMPLES = 1000
BOUND = 20.0
SKIP = {"console"}  # interactive: it reads the terminal until the user leaves
COMMANDS = {c.name: c for group in groups() for c in group.commands}
NAMES = sorted(set(COMMANDS) - SKIP)
ALL_OPTS = sorted({f"--{o.name}" for c in COMMANDS.values() for o in c.opts} - {"--follow"})
VALUES = [
    "test", "web1", "db1", "kernel-dev", "build", "missing", "1", "2", "3", "0", "-1", "+1",
    "99999999999", "9" * 5000, "6695eb01-f6a4-8304-79aa-97f2502e193f",
    "6695eb01-f6a4-8304-79aa-97f2502e193e", "", " ", "-", "--", "=", "--=", "a=b",
    "\x1b[31mred", "\x07", "é", "\u202e", "name with spaces", "x" * 300, "nan", "inf", "1e999",
    "10m", "2h", "0001-01-01", "9999-12-31T23:59:59", "2026-12-02T13:00+99:00",
    "test:///default", "nope:///", "qemu+ssh:///", "lifecycle", "reboot", "all",
]  # fmt: skip


#: Not-command first words: no option (those belong to the global parser, and ``--``
#: alone would open the terminal UI, which is not a one-shot command).
WORDS = [v for v in VALUES if not v.startswith("-")]


def files(base: Path) -> list[str]:
    valid = base / "valid.xml"
    valid.write_text("<domain type='test'><name>fz</name><memory>1024</memory></domain>")
    garbage = base / "garbage.xml"
    garbage.write_bytes(b"\xff\xfe<domain")
    return [str(valid), str(garbage), str(base), str(base / "absent"), "/dev/null", "/dev/zero"]


def run(argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    result: dict[str, object] = {}

    def target() -> None:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                result["rc"] = main(argv)
            except SystemExit as exit_:
                result["rc"] = exit_.code
            except BaseException as exc:  # what the test is looking for
                result["exc"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), f"virtdeck {argv!r} did not return within {BOUND:g} s"
    exc = result.get("exc")
    if isinstance(exc, BaseException):
        raise AssertionError(f"virtdeck {argv!r} raised") from exc
    return result["rc"], out.getvalue(), err.getvalue()


@st.composite
def command_lines(draw: st.DrawFn, pool: list[str]) -> list[str]:
    argv: list[str] = []
    if draw(st.booleans()):
        argv += draw(st.sampled_from([["-q"], ["--quiet"], ["-c", "test:///default"]]))
    argv += ["-c", "test:///default"]
    name = draw(st.sampled_from(NAMES) if draw(st.integers(0, 9)) else st.sampled_from(WORDS))
    argv.append(name)
    command = COMMANDS.get(name)
    own = [f"--{o.name}" for o in command.opts if o.name != "follow"] if command else []
    for opt in command.opts if command else ():
        # mostly a sensible value where one goes, sometimes none at all
        if opt.positional and draw(st.integers(0, 4)):
            argv.append(draw(st.sampled_from(pool)))
        elif opt.kind == "bool" and not draw(st.integers(0, 3)) and opt.name != "follow":
            argv.append(f"--{opt.name}")
    words = st.sampled_from(pool) | st.text(max_size=12) | st.sampled_from(ALL_OPTS)
    if own:
        words = (
            words
            | st.sampled_from(own)
            | st.sampled_from(own).flatmap(
                lambda o: st.sampled_from(pool).map(lambda v: f"{o}={v}")
            )
        )
    argv += draw(st.lists(words, max_size=3))
    if name == "event":
        argv += ["--timeout", "1"]  # the last --timeout wins: nothing waits for long
    return argv


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return VALUES + files(tmp_path_factory.mktemp("cli"))


SEEN: dict[object, int] = {}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_command_lines(data: st.DataObject, pool: list[str]) -> None:
    argv = data.draw(command_lines(pool))
    rc, out, err = run(argv)
    SEEN[rc] = SEEN.get(rc, 0) + 1
    assert rc in (0, 1), (argv, rc, err)
    assert "Traceback" not in out + err, (argv, err)
    assert "\x1b" not in out + err and "\x07" not in out + err, (argv, out, err)
    if rc == 1 and "events received: 0" in out:
        pass  # like virsh: a wait that saw no event fails, with no error line
    elif rc == 1:
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert lines and all(len(line) > len("error: ") + 3 for line in lines), (argv, err)
    else:
        assert "error:" not in err, (argv, err)


@pytest.mark.parametrize(
    "argv",
    [
        ["domstate", "9" * 5000],  # an "id" of 5000 digits: ValueError from int()
        ["define", "/dev/zero"],  # read until memory ran out: a hang
        ["dominfo", "\x1b[31mred"],
        ["logs", "test", "--since", "0001-01-01"],
        ["logs", "test", "--since", "1e999"],  # printed nothing, as if no line came
        ["logs", "test", "--since", "nan"],
        ["event", "--all", "--loop", "--timeout", "9" * 30],
        ["migrate", "test", "nope:///", "--bandwidth", "9" * 5000],
    ],
    ids=[
        "long-id",
        "dev-zero",
        "escape",
        "since-year-1",
        "since-inf",
        "since-nan",
        "long-timeout",
        "long-bw",
    ],
)
def test_found_by_the_fuzz(argv: list[str]) -> None:
    """Command lines the fuzz found (or that stand for what it found): each must fail
    with a clear error, fast."""
    rc, out, err = run(["-c", "test:///default", *argv])
    assert rc == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert "\x1b" not in out + err


def test_what_the_fuzz_saw() -> None:
    print("CLI fuzz exit statuses:", SEEN)
