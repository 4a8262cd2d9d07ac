"""Key names for a guest's keyboard: QEMU's qcodes, Linux key codes, and text.

QEMU's ``input-send-event`` names keys by *qcode* (its ``QKeyCode`` enum: ``ctrl``,
``alt``, ``delete``, ``f2``, ``a``, ``ret``). ``virsh send-key`` takes keys of a *codeset*;
two are understood here, as libvirt spells them:

- ``linux`` (virsh's default): the names of ``<linux/input-event-codes.h>``
  (``KEY_LEFTCTRL``, ``KEY_DELETE``) or their numbers (``29``, ``111``);
- ``qcode``: QEMU's names themselves (``ctrl``, ``delete``).

Text becomes key presses on a US keyboard layout (what a guest's console has until told
otherwise): ``A`` is shift + ``a``, ``!`` is shift + ``1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from drivers.errors import InvalidArgument
from drivers.model import InputEvent, InputPause, KeyInput

#: QEMU 7.2's QKeyCode values (without ``unmapped``), in QEMU's order; a test compares
#: them with the running QEMU's schema.
QCODES: tuple[str, ...] = (
    "shift", "shift_r", "alt", "alt_r", "ctrl", "ctrl_r", "menu", "esc",
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "minus", "equal", "backspace", "tab",
    "q", "w", "e", "r", "t", "y", "u", "i", "o", "p", "bracket_left", "bracket_right", "ret",
    "a", "s", "d", "f", "g", "h", "j", "k", "l", "semicolon", "apostrophe", "grave_accent",
    "backslash", "z", "x", "c", "v", "b", "n", "m", "comma", "dot", "slash", "asterisk", "spc",
    "caps_lock", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "num_lock",
    "scroll_lock", "kp_divide", "kp_multiply", "kp_subtract", "kp_add", "kp_enter",
    "kp_decimal", "sysrq", "kp_0", "kp_1", "kp_2", "kp_3", "kp_4", "kp_5", "kp_6", "kp_7",
    "kp_8", "kp_9", "less", "f11", "f12", "print", "home", "pgup", "pgdn", "end", "left", "up",
    "down", "right", "insert", "delete", "stop", "again", "props", "undo", "front", "copy",
    "open", "paste", "find", "cut", "lf", "help", "meta_l", "meta_r", "compose", "pause", "ro",
    "hiragana", "henkan", "yen", "muhenkan", "katakanahiragana", "kp_comma", "kp_equals",
    "power", "sleep", "wake", "audionext", "audioprev", "audiostop", "audioplay", "audiomute",
    "volumeup", "volumedown", "mediaselect", "mail", "calculator", "computer", "ac_home",
    "ac_back", "ac_forward", "ac_refresh", "ac_bookmarks", "lang1", "lang2",
)  # fmt: skip
_QCODE_SET = frozenset(QCODES)

#: Linux key codes (input-event-codes.h) and the qcode each is; only keys QEMU can send.
_LINUX: tuple[tuple[str, int, str], ...] = (
    ("ESC", 1, "esc"), ("1", 2, "1"), ("2", 3, "2"), ("3", 4, "3"), ("4", 5, "4"),
    ("5", 6, "5"), ("6", 7, "6"), ("7", 8, "7"), ("8", 9, "8"), ("9", 10, "9"), ("0", 11, "0"),
    ("MINUS", 12, "minus"), ("EQUAL", 13, "equal"), ("BACKSPACE", 14, "backspace"),
    ("TAB", 15, "tab"), ("Q", 16, "q"), ("W", 17, "w"), ("E", 18, "e"), ("R", 19, "r"),
    ("T", 20, "t"), ("Y", 21, "y"), ("U", 22, "u"), ("I", 23, "i"), ("O", 24, "o"),
    ("P", 25, "p"), ("LEFTBRACE", 26, "bracket_left"), ("RIGHTBRACE", 27, "bracket_right"),
    ("ENTER", 28, "ret"), ("LEFTCTRL", 29, "ctrl"), ("A", 30, "a"), ("S", 31, "s"),
    ("D", 32, "d"), ("F", 33, "f"), ("G", 34, "g"), ("H", 35, "h"), ("J", 36, "j"),
    ("K", 37, "k"), ("L", 38, "l"), ("SEMICOLON", 39, "semicolon"),
    ("APOSTROPHE", 40, "apostrophe"), ("GRAVE", 41, "grave_accent"), ("LEFTSHIFT", 42, "shift"),
    ("BACKSLASH", 43, "backslash"), ("Z", 44, "z"), ("X", 45, "x"), ("C", 46, "c"),
    ("V", 47, "v"), ("B", 48, "b"), ("N", 49, "n"), ("M", 50, "m"), ("COMMA", 51, "comma"),
    ("DOT", 52, "dot"), ("SLASH", 53, "slash"), ("RIGHTSHIFT", 54, "shift_r"),
    ("KPASTERISK", 55, "kp_multiply"), ("LEFTALT", 56, "alt"), ("SPACE", 57, "spc"),
    ("CAPSLOCK", 58, "caps_lock"), ("F1", 59, "f1"), ("F2", 60, "f2"), ("F3", 61, "f3"),
    ("F4", 62, "f4"), ("F5", 63, "f5"), ("F6", 64, "f6"), ("F7", 65, "f7"), ("F8", 66, "f8"),
    ("F9", 67, "f9"), ("F10", 68, "f10"), ("NUMLOCK", 69, "num_lock"),
    ("SCROLLLOCK", 70, "scroll_lock"), ("KP7", 71, "kp_7"), ("KP8", 72, "kp_8"),
    ("KP9", 73, "kp_9"), ("KPMINUS", 74, "kp_subtract"), ("KP4", 75, "kp_4"),
    ("KP5", 76, "kp_5"), ("KP6", 77, "kp_6"), ("KPPLUS", 78, "kp_add"), ("KP1", 79, "kp_1"),
    ("KP2", 80, "kp_2"), ("KP3", 81, "kp_3"), ("KP0", 82, "kp_0"), ("KPDOT", 83, "kp_decimal"),
    ("102ND", 86, "less"), ("F11", 87, "f11"), ("F12", 88, "f12"), ("RO", 89, "ro"),
    ("KATAKANAHIRAGANA", 93, "katakanahiragana"), ("HENKAN", 92, "henkan"),
    ("HIRAGANA", 91, "hiragana"), ("MUHENKAN", 94, "muhenkan"), ("KPENTER", 96, "kp_enter"),
    ("RIGHTCTRL", 97, "ctrl_r"), ("KPSLASH", 98, "kp_divide"), ("SYSRQ", 99, "sysrq"),
    ("RIGHTALT", 100, "alt_r"), ("LINEFEED", 101, "lf"), ("HOME", 102, "home"),
    ("UP", 103, "up"), ("PAGEUP", 104, "pgup"), ("LEFT", 105, "left"), ("RIGHT", 106, "right"),
    ("END", 107, "end"), ("DOWN", 108, "down"), ("PAGEDOWN", 109, "pgdn"),
    ("INSERT", 110, "insert"), ("DELETE", 111, "delete"), ("MUTE", 113, "audiomute"),
    ("VOLUMEDOWN", 114, "volumedown"), ("VOLUMEUP", 115, "volumeup"), ("POWER", 116, "power"),
    ("KPEQUAL", 117, "kp_equals"), ("PAUSE", 119, "pause"), ("KPCOMMA", 121, "kp_comma"),
    ("HANGEUL", 122, "lang1"), ("HANJA", 123, "lang2"), ("YEN", 124, "yen"),
    ("LEFTMETA", 125, "meta_l"), ("RIGHTMETA", 126, "meta_r"), ("COMPOSE", 127, "compose"),
    ("STOP", 128, "stop"), ("AGAIN", 129, "again"), ("PROPS", 130, "props"),
    ("UNDO", 131, "undo"), ("FRONT", 132, "front"), ("COPY", 133, "copy"),
    ("OPEN", 134, "open"), ("PASTE", 135, "paste"), ("FIND", 136, "find"), ("CUT", 137, "cut"),
    ("HELP", 138, "help"), ("MENU", 139, "menu"), ("CALC", 140, "calculator"),
    ("SLEEP", 142, "sleep"), ("WAKEUP", 143, "wake"), ("MAIL", 155, "mail"),
    ("BOOKMARKS", 156, "ac_bookmarks"), ("COMPUTER", 157, "computer"), ("BACK", 158, "ac_back"),
    ("FORWARD", 159, "ac_forward"), ("NEXTSONG", 163, "audionext"),
    ("PLAYPAUSE", 164, "audioplay"), ("PREVIOUSSONG", 165, "audioprev"),
    ("STOPCD", 166, "audiostop"), ("HOMEPAGE", 172, "ac_home"), ("REFRESH", 173, "ac_refresh"),
    ("MEDIA", 226, "mediaselect"), ("PRINT", 210, "print"),
)  # fmt: skip
LINUX_NAMES: dict[str, str] = {f"KEY_{name}": qcode for name, _, qcode in _LINUX}
LINUX_CODES: dict[int, str] = {code: qcode for _, code, qcode in _LINUX}

CODESETS = ("linux", "qcode")

#: The longest ``--holdtime`` taken, in milliseconds (a held key is a stuck key).
MAX_HOLD_MS = 10_000
#: virsh send-key's default hold time.
DEFAULT_HOLD_MS = 0
#: At most this many keys pressed together (virsh's limit).
MAX_KEYS = 16

# Text on a US layout: the unshifted and the shifted character of each key.
_US_KEYS: tuple[tuple[str, str, str], ...] = (
    ("1", "!", "1"), ("2", "@", "2"), ("3", "#", "3"), ("4", "$", "4"), ("5", "%", "5"),
    ("6", "^", "6"), ("7", "&", "7"), ("8", "*", "8"), ("9", "(", "9"), ("0", ")", "0"),
    ("-", "_", "minus"), ("=", "+", "equal"), ("[", "{", "bracket_left"),
    ("]", "}", "bracket_right"), ("\\", "|", "backslash"), (";", ":", "semicolon"),
    ("'", '"', "apostrophe"), ("`", "~", "grave_accent"), (",", "<", "comma"),
    (".", ">", "dot"), ("/", "?", "slash"),
)  # fmt: skip
_CHARS: dict[str, tuple[str, bool]] = {
    " ": ("spc", False),
    "\n": ("ret", False),
    "\r": ("ret", False),
    "\t": ("tab", False),
    "\b": ("backspace", False),
    "\x1b": ("esc", False),
}
for _plain, _shifted, _qcode in _US_KEYS:
    _CHARS[_plain] = (_qcode, False)
    _CHARS[_shifted] = (_qcode, True)
for _letter in "abcdefghijklmnopqrstuvwxyz":
    _CHARS[_letter] = (_letter, False)
    _CHARS[_letter.upper()] = (_letter, True)


def is_qcode(name: str) -> bool:
    return name in _QCODE_SET


def _listing(names: Iterable[str], limit: int = 0) -> str:
    shown = list(names)
    if limit and len(shown) > limit:
        return ", ".join(shown[:limit]) + f", … ({len(shown)} in all)"
    return ", ".join(shown)


def valid_keys(codeset: str) -> str:
    """The key names of ``codeset``, for an error message."""
    if codeset == "qcode":
        return _listing(QCODES)
    return _listing(LINUX_NAMES) + " (or their numbers: KEY_A is 30)"


def key_to_qcode(word: str, codeset: str = "linux") -> str:
    """The qcode of one ``send-key`` word of ``codeset``; InvalidArgument (naming the valid
    keys) for one that is not a key."""
    if codeset not in CODESETS:
        raise InvalidArgument(
            f"Unknown key codeset '{codeset}'; virtdeck understands: {', '.join(CODESETS)}."
        )
    if codeset == "qcode":
        name = word.lower()
        if name in _QCODE_SET:
            return name
        raise InvalidArgument(
            f"'{word}' is not a QEMU key name (codeset qcode). Valid keys: {valid_keys('qcode')}."
        )
    text = word.strip()
    number: int | None = None
    if text.isdigit():
        number = int(text)
    elif text.lower().startswith("0x"):
        try:
            number = int(text, 16)
        except ValueError:
            number = None
    if number is not None:
        found = LINUX_CODES.get(number)
        if found is None:
            raise InvalidArgument(
                f"Linux key code {word} has no key QEMU can send. Valid keys: "
                f"{valid_keys('linux')}."
            )
        return found
    name = text.upper()
    if not name.startswith("KEY_"):
        name = f"KEY_{name}"
    found = LINUX_NAMES.get(name)
    if found is None:
        raise InvalidArgument(
            f"'{word}' is not a Linux key name (codeset linux). Valid keys: "
            f"{valid_keys('linux')}; with --codeset qcode: {valid_keys('qcode')}."
        )
    return found


def key_combo(qcodes: Sequence[str], hold_ms: int = DEFAULT_HOLD_MS) -> list[InputEvent]:
    """Press ``qcodes`` together, in order, hold them ``hold_ms`` ms, release them in
    reverse order: ``virsh send-key`` (ctrl+alt+delete is ``ctrl alt delete``)."""
    if not qcodes:
        raise InvalidArgument("Name at least one key to send.")
    if len(qcodes) > MAX_KEYS:
        raise InvalidArgument(
            f"At most {MAX_KEYS} keys can be pressed together, not {len(qcodes)}."
        )
    for qcode in qcodes:
        if qcode not in _QCODE_SET:
            raise InvalidArgument(
                f"'{qcode}' is not a QEMU key name. Valid keys: {valid_keys('qcode')}."
            )
    if not 0 <= hold_ms <= MAX_HOLD_MS:
        raise InvalidArgument(f"The hold time must be 0 to {MAX_HOLD_MS} ms, not {hold_ms}.")
    events: list[InputEvent] = [KeyInput(q, True) for q in qcodes]
    if hold_ms:
        events.append(InputPause(hold_ms))
    events.extend(KeyInput(q, False) for q in reversed(qcodes))
    return events


def text_events(text: str) -> list[InputEvent]:
    """Key presses that type ``text`` on a US layout; InvalidArgument for a character no
    key of it makes."""
    events: list[InputEvent] = []
    for char in text:
        found = _CHARS.get(char)
        if found is None:
            raise InvalidArgument(
                f"{char!r} cannot be typed on the guest's (US) keyboard; send it as keys "
                "with send-key instead."
            )
        qcode, shifted = found
        if shifted:
            events.append(KeyInput("shift", True))
        events += [KeyInput(qcode, True), KeyInput(qcode, False)]
        if shifted:
            events.append(KeyInput("shift", False))
    return events


#: The characters :func:`text_events` can type.
TYPABLE = frozenset(_CHARS)
