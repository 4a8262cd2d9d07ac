"""virtdeck's directories under the XDG base directories.

Strings made with :mod:`os.path`: the one-shot CLI and the TUI's load cache look for their
files before :mod:`pathlib` is loaded.
"""

from __future__ import annotations

import os


def virtdeck_dir(variable: str, default: str) -> str:
    """``$variable/virtdeck``, or ``~/default/virtdeck`` when the variable is unset or empty
    (e.g. ``virtdeck_dir("XDG_CACHE_HOME", ".cache")``)."""
    base = os.environ.get(variable) or os.path.join(os.path.expanduser("~"), default)
    return os.path.join(base, "virtdeck")
