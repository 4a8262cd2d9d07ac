"""``screenshot`` and ``send-key`` as virsh has them, on the test driver (the real guest:
tests/remote/test_screen_remote.py)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from drivers.model import DomainState
from drivers.test.driver import domain_xml, node_xml
from tui.cli import main
from tui.virsh.options import parse
from tui.virsh.screen import SEND_KEY


@pytest.fixture
def host(tmp_path: Path) -> str:
    """A test-driver host with a running domain that has a display and one that has none."""
    node = tmp_path / "node.xml"
    running = DomainState.RUNNING
    shown = domain_xml("shown", "11111111-2222-4333-8444-555555555555", 512, 1, vnc=True,
                       runstate=running)  # fmt: skip
    plain = domain_xml("plain", "11111111-2222-4333-8444-666666666666", 512, 1,
                       runstate=running)  # fmt: skip
    node.write_text(node_xml([shown, plain]))
    return f"test://{node}"


def test_screenshot_to_a_file(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "shot.png"
    assert main(["-c", host, "screenshot", "shown", str(target)]) == 0
    out = capsys.readouterr().out
    assert out == f"Screenshot saved to {target}, with type of image/png\n\n"
    image = Image.open(io.BytesIO(target.read_bytes()))
    assert (image.format, image.size) == ("PNG", (720, 400))
    assert not list(tmp_path.glob(".*part"))
    # --file, and PPM by the name's suffix
    ppm = tmp_path / "shot.ppm"
    assert main(["-c", host, "screenshot", "--file", str(ppm), "shown"]) == 0
    assert "with type of image/x-portable-pixmap" in capsys.readouterr().out
    assert ppm.read_bytes().startswith(b"P6")


def test_screenshot_default_name(
    host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["-c", host, "screenshot", "shown"]) == 0
    out = capsys.readouterr().out
    match = re.fullmatch(
        r"Screenshot saved to (shown-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.png), with type of "
        r"image/png\n\n",
        out,
    )
    assert match, out
    assert (tmp_path / match[1]).read_bytes().startswith(b"\x89PNG")


def test_no_display(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", host, "screenshot", "plain", "/nonexistent/x.png"]) == 1
    err = capsys.readouterr().err
    assert "error: Domain 'plain' has no display" in err
    assert "serial console" in err and "virtdeck console plain" in err
    assert main(["-c", host, "send-key", "plain", "KEY_A"]) == 1
    assert "has no display" in capsys.readouterr().err
    assert main(["-c", host, "screenshot", "shown", "--screen", "1"]) == 1
    assert "primary display only" in capsys.readouterr().err


def test_send_key(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", host, "send-key", "shown", "KEY_LEFTCTRL", "KEY_LEFTALT", "KEY_F2"]) == 0
    assert capsys.readouterr().out == "\n"
    assert main(["-c", host, "send-key", "shown", "--codeset", "qcode", "ctrl", "alt",
                 "delete", "--holdtime", "20"]) == 0  # fmt: skip
    assert main(["-c", host, "send-key", "shown", "29", "0x38", "111"]) == 0


def test_send_key_parses_virsh_words() -> None:
    args = parse(SEND_KEY, ["web", "--codeset", "qcode", "ctrl", "alt", "--holdtime=5", "f2"])
    assert args.required("domain") == "web"
    assert args.words("keycode") == ["ctrl", "alt", "f2"]
    assert args.text("holdtime") == "5"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["KEY_FOO"], r"'KEY_FOO' is not a Linux key name \(codeset linux\)\. Valid keys: "
                      r"KEY_ESC, KEY_1, .*KEY_LEFTCTRL.*; with --codeset qcode: shift, .*ctrl"),
        (["--codeset", "qcode", "control"], r"'control' is not a QEMU key name \(codeset "
                                             r"qcode\)\. Valid keys: shift, shift_r, alt, .*"),
        (["999"], r"Linux key code 999 has no key QEMU can send\. Valid keys: KEY_ESC"),
        (["--codeset", "usb", "4"], r"Unknown codeset 'usb'; virtdeck understands: linux, qcode"),
        (["--holdtime", "soon", "KEY_A"], r"--holdtime 'soon' is not a number"),
        (["--holdtime", "99999", "KEY_A"], r"The hold time must be 0 to 10000 ms"),
    ],
)  # fmt: skip
def test_send_key_bad_input(
    host: str, words: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-c", host, "send-key", "shown", *words]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err), err


def test_send_key_needs_a_key(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", host, "send-key", "shown"]) == 1
    assert "requires <keycode> option" in capsys.readouterr().err
