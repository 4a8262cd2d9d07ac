"""The TUI under test in ``bench.tui_startup``: starts the way ``virtdeck`` does.

The ``virtdeck`` console script imports :mod:`tui.cli` (os and sys only) and then
:mod:`tui.app`, before anything else; this entry does the same, so that the start-up figure
is the user's, not the benchmark's own imports (asyncio, subprocess, threading… loaded ahead
of :mod:`tui.loading` would be loaded with the garbage collector running). The benchmark's
child code loads after the app's modules.
"""

import time

T_PROCESS = time.monotonic()  # reported as "interpreter up"

# isort: off
import tui.cli  # noqa: E402 - what the console script loads first
import tui.app  # noqa: E402,F401

# isort: on
import sys  # noqa: E402

IMPORTED = time.monotonic()

from bench import tui_startup  # noqa: E402

if __name__ == "__main__":
    sys.exit(tui_startup.child(tui_startup.child_args(sys.argv[1:]), T_PROCESS, IMPORTED))
