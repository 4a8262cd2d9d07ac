"""What must happen before Textual loads: :mod:`tui.app` imports this module first.

- No garbage collection while the modules load. Loading Textual and the app creates some
  70 000 objects that live as long as the process; the collector would walk them again and
  again while they are being made (30 to 50 ms of a start-up that should take under half a
  second). :func:`loaded`, called once the modules are in, resumes it, with what the imports
  made frozen out of its sight (``gc.freeze``), so that later collections stay short too.
- Textual's frame rate (``TEXTUAL_FPS``, unless the user set it): 120 rather than 60. Textual
  paces screen updates on a grid of 1/FPS s and, after an update that ended off the grid,
  skips to the next-but-one slot; at 60 FPS a key pressed just after the table redrew for a
  burst of events waited up to 33 ms for its own redraw. Updates still happen only when
  something changed, so this costs no idle CPU and, under a storm of events, no more updates.
- The load cache (:mod:`tui.load_cache`): the modules' code, regular expressions and
  dataclass methods that loading Textual needs, kept from an earlier run.
"""

from __future__ import annotations

import gc
import os

from tui import load_cache

os.environ.setdefault("TEXTUAL_FPS", "120")

_paused = gc.isenabled()
if _paused:
    gc.disable()
load_cache.install()


def loaded() -> None:
    """The modules are loaded: freeze what they made and let the collector run again."""
    global _paused
    load_cache.finish()
    gc.freeze()
    if _paused:
        _paused = False
        gc.enable()
