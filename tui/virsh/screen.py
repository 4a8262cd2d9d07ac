"""``screenshot`` and ``send-key``: the guest's screen from the command line, as in virsh.

``virtdeck screenshot DOMAIN [FILE]`` saves a picture of the domain's display (PNG, or PPM
for a FILE ending in .ppm); without FILE it is named as virsh names it,
``DOMAIN-YYYY-MM-DD-HH:MM:SS.png``. ``virtdeck send-key DOMAIN [--codeset linux|qcode]
[--holdtime MS] KEY...`` presses the keys together and releases them (``KEY_LEFTCTRL
KEY_LEFTALT KEY_DELETE``, or with ``--codeset qcode`` ``ctrl alt delete``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from drivers.errors import InvalidArgument, OperationFailed
from drivers.keys import CODESETS, DEFAULT_HOLD_MS, key_combo, key_to_qcode
from tui.virsh.options import Args, Command, Opt
from tui.virsh.shell import Shell

DOMAIN = Opt("domain", "string", "domain name, id or uuid", positional=True, required=True)


def _format_for(path: str) -> str:
    return "ppm" if path.lower().endswith(".ppm") else "png"


async def cmd_screenshot(shell: Shell, args: Args) -> bool:
    screen = args.text("screen")
    if screen is not None and screen.strip() != "0":
        raise InvalidArgument(
            f"--screen {screen}: virtdeck shows the primary display only; write --screen 0 "
            "or leave it out."
        )
    dom = await shell.domain(args.required("domain"))
    wanted = args.text("file")
    fmt = _format_for(wanted) if wanted else "png"
    shot = await dom.screenshot(fmt)
    name = wanted or f"{dom.name}-{time.strftime('%Y-%m-%d-%H:%M:%S')}.{shot.format}"
    path = Path(name)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        temporary.write_bytes(shot.data)
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise OperationFailed(f"Cannot write the screenshot to {name}: {err.strerror}.") from err
    shell.print(f"Screenshot saved to {name}, with type of {shot.mime}\n")
    return True


async def cmd_send_key(shell: Shell, args: Args) -> bool:
    codeset = args.text("codeset") or "linux"
    if codeset not in CODESETS:
        raise InvalidArgument(
            f"Unknown codeset '{codeset}'; virtdeck understands: {', '.join(CODESETS)}."
        )
    hold_text = args.text("holdtime")
    hold = DEFAULT_HOLD_MS
    if hold_text is not None:
        try:
            hold = int(hold_text)
        except ValueError:
            raise InvalidArgument(
                f"--holdtime '{hold_text}' is not a number of milliseconds."
            ) from None
    words = args.words("keycode")
    if not words:
        raise InvalidArgument("Name at least one key to send, e.g. KEY_ENTER.")
    qcodes = [key_to_qcode(word, codeset) for word in words]  # before any lookup: bad input
    events = key_combo(qcodes, hold)
    dom = await shell.domain(args.required("domain"))
    await dom.send_input(events)
    return True


SCREENSHOT = Command(
    "screenshot",
    "take a screenshot of a current domain console and store it into a file",
    "Take a screenshot of a current domain console and store it into a file (PNG; PPM for "
    "a file name ending in .ppm).",
    (
        DOMAIN,
        Opt("file", "string", "where to store the screenshot", positional=True),
        Opt("screen", "number", "ID of a screen to take screenshot of (only 0)"),
    ),
    cmd_screenshot,
)

SEND_KEY = Command(
    "send-key",
    "Send keycodes to the guest",
    "Send keycodes (Linux key names or numbers, or QEMU qcodes) to the guest: pressed "
    "together in order, released in reverse order.",
    (
        DOMAIN,
        Opt("codeset", "string", "the codeset of keycodes: linux (default) or qcode"),
        Opt("holdtime", "number", "the time (in milliseconds) how long the keys will be held"),
        Opt("keycode", "argv", "the key code", positional=True, required=True),
    ),
    cmd_send_key,
)
