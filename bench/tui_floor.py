"""A yardstick for ``bench.tui_startup``'s launch figure: a bare Textual app.

One ``Static`` on a screen, started on the same pseudo-terminal (garbage collection paused
while Textual loads, as virtdeck does), reporting its first screen update. It loads Textual
the plain way, compiling its regular expressions and dataclass methods afresh, which
virtdeck takes from its load cache (tui.load_cache): so virtdeck, with its own modules, the
connection and 300 rows, can show its table sooner than this shows one line.
"""

import gc
import time

T_PROCESS = time.monotonic()
gc.disable()

# isort: off
from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import Static  # noqa: E402

# isort: on
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

IMPORTED = time.monotonic()
gc.enable()


class Bare(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("hello")

    def _display(self, screen: Any, renderable: Any) -> None:
        super()._display(screen, renderable)
        if renderable is not None and not getattr(self, "_reported", False):
            self._reported = True
            now = time.monotonic()
            report.write(
                json.dumps({"ready": now, "imported": IMPORTED, "process": T_PROCESS}) + "\n"
            )
            report.flush()
            self.exit()


if __name__ == "__main__":
    words = sys.argv[1:]
    fd = int(words[words.index("--report-fd") + 1])
    report = os.fdopen(fd, "w", buffering=1)
    Bare().run()
