"""Dependencies point one way: drivers never loads textual, rich, tui or themes."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("textual", "rich", "tui", "themes")


def test_import_drivers_loads_no_ui() -> None:
    code = (
        "import sys, drivers, drivers.qemu.driver, drivers.test.driver, drivers.domxml;"
        "import drivers.qemu.events, drivers.qemu.argv;"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}];"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"drivers imported {out}"
