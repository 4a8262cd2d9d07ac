"""Terminal keys for the guest's keyboard: Textual's key names to QEMU qcodes.

A terminal delivers text and a few named keys, each with the modifiers it can tell
(``ctrl+a``, ``shift+tab``, ``alt+x``, ``ctrl+left``); :func:`key_events` turns one into
the key presses of a PC keyboard: modifiers down, the key down and up, modifiers up. A
printable character is typed as on a US keyboard (``A`` is shift + a).

Keys a terminal cannot send at all (ctrl+alt+delete, ctrl+alt+F2, the Windows key,
SysRq) are in :data:`SPECIAL_KEYS`, the screen view's "send special key" menu.
"""

from __future__ import annotations

from drivers.keys import TYPABLE, key_combo, text_events
from drivers.model import InputEvent, KeyInput

#: Textual's key names (without modifiers) that are not characters, and their qcodes.
NAMED_KEYS: dict[str, str] = {
    "enter": "ret",
    "tab": "tab",
    "escape": "esc",
    "backspace": "backspace",
    "delete": "delete",
    "insert": "insert",
    "home": "home",
    "end": "end",
    "pageup": "pgup",
    "pagedown": "pgdn",
    "up": "up",
    "down": "down",
    "left": "left",
    "right": "right",
    "space": "spc",
    **{f"f{n}": f"f{n}" for n in range(1, 13)},
    # what Textual calls the punctuation keys when it names them with a modifier
    "minus": "minus",
    "equals_sign": "equal",
    "left_square_bracket": "bracket_left",
    "right_square_bracket": "bracket_right",
    "backslash": "backslash",
    "semicolon": "semicolon",
    "apostrophe": "apostrophe",
    "grave_accent": "grave_accent",
    "comma": "comma",
    "full_stop": "dot",
    "slash": "slash",
}
_MODIFIER_CODES = {"ctrl": "ctrl", "alt": "alt", "shift": "shift", "meta": "meta_l",
                   "super": "meta_l"}  # fmt: skip
# Control characters a terminal sends for ctrl+punctuation, by the key Textual names.
_CONTROL_NAMES = {
    "ctrl+at": ("ctrl", "2"),
    "ctrl+space": ("ctrl", "spc"),
    "ctrl+backslash": ("ctrl", "backslash"),
    "ctrl+circumflex_accent": ("ctrl", "6"),
    "ctrl+underscore": ("ctrl", "minus"),
}

#: The "send special key" menu: what it shows, and the qcodes pressed together.
SPECIAL_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ctrl+alt+delete", ("ctrl", "alt", "delete")),
    *((f"ctrl+alt+F{n}", ("ctrl", "alt", f"f{n}")) for n in range(1, 13)),
    ("ctrl+alt+backspace", ("ctrl", "alt", "backspace")),
    ("alt+sysrq (magic SysRq: then a letter)", ("alt", "sysrq")),
    ("sysrq / print screen", ("sysrq",)),
    ("super (Windows key)", ("meta_l",)),
    ("alt+tab", ("alt", "tab")),
    ("alt+F4", ("alt", "f4")),
    ("ctrl+] (the view's own escape key)", ("ctrl", "bracket_right")),
    ("ctrl+\\ (the menu's own key)", ("ctrl", "backslash")),
    ("pause / break", ("pause",)),
)


def key_events(key: str, character: str | None) -> list[InputEvent] | None:
    """The guest's key presses for Textual's ``key`` (with its ``character``); None for
    a key with no PC key (then nothing is sent)."""
    if character is not None and len(character) == 1 and "+" not in key.replace("plus", ""):
        if character in TYPABLE and character >= " ":
            return text_events(character)
    control = _CONTROL_NAMES.get(key)
    if control is not None:
        return key_combo(control)
    *modifiers, name = key.split("+") if key != "plus" else ["plus"]
    codes: list[str] = []
    for modifier in modifiers:
        code = _MODIFIER_CODES.get(modifier)
        if code is None:
            return None
        codes.append(code)
    qcode = NAMED_KEYS.get(name)
    if qcode is None:
        if len(name) == 1 and name.lower() in TYPABLE:
            # ctrl+a, alt+x: the letter's key; an upper-case letter means shift too
            typed = text_events(name)
            keys = [e.qcode for e in typed if isinstance(e, KeyInput) and e.down]
            codes.extend(k for k in keys if k not in codes)
            return key_combo(codes)
        if character is not None and len(character) == 1 and character in TYPABLE:
            typed = text_events(character)
            keys = [e.qcode for e in typed if isinstance(e, KeyInput) and e.down]
            codes.extend(k for k in keys if k not in codes)
            return key_combo(codes)
        return None
    return key_combo([*codes, qcode])
