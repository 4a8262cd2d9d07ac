"""How pictures are drawn in this terminal: kitty graphics, sixel, or Unicode half-blocks.

The pictures are drawn by `textual-image <https://pypi.org/project/textual-image/>`_
(its renderables and widgets; Pillow decodes and scales). Which protocol, and the size of a
terminal cell in pixels, are chosen here, once:

- ``VIRTDECK_GRAPHICS=kitty|sixel|halfblock`` forces one;
- otherwise the terminal's own variables decide: kitty (``TERM=xterm-kitty`` or
  ``KITTY_WINDOW_ID``) draws with the kitty graphics protocol; WezTerm, foot, mlterm and
  contour with sixel; everything else, and any terminal inside tmux or screen (which pass
  neither on), with half-blocks, in truecolor or in 256 colours as Textual finds the
  terminal.

textual-image would ask the terminal itself when it is imported, but by then Textual reads
the terminal's input and the answers would arrive as key presses: it is imported with its
questions turned off, and given the cell size the kernel knows (``TIOCGWINSZ``).
"""

from __future__ import annotations

import io
import os
import sys
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from textual.widget import Widget

Protocol = Literal["kitty", "sixel", "halfblock"]
PROTOCOLS: tuple[Protocol, ...] = ("kitty", "sixel", "halfblock")

_SIXEL_TERMINALS = ("foot", "foot-extra", "mlterm", "contour", "yaft-256color")
_SIXEL_PROGRAMS = ("WezTerm", "mlterm", "contour")

_chosen: Protocol | None = None


def choose(env: dict[str, str] | None = None, tty: bool | None = None) -> Protocol:
    """The protocol for a terminal with ``env``'s variables (default: this process's)."""
    env = dict(os.environ) if env is None else env
    forced = env.get("VIRTDECK_GRAPHICS", "").strip().lower()
    for known in PROTOCOLS:
        if forced == known:
            return known
    if tty is None:
        tty = _terminal() is not None
    if not tty or env.get("TMUX") or env.get("TERM", "").startswith("screen"):
        return "halfblock"
    term = env.get("TERM", "")
    if term == "xterm-kitty" or env.get("KITTY_WINDOW_ID"):
        return "kitty"
    if term in _SIXEL_TERMINALS or env.get("TERM_PROGRAM") in _SIXEL_PROGRAMS:
        return "sixel"
    return "halfblock"


def protocol() -> Protocol:
    global _chosen
    if _chosen is None:
        _chosen = choose()
    return _chosen


def _terminal() -> int | None:
    """The file descriptor of the terminal Textual draws on (its stderr, else stdout)."""
    for stream in (sys.__stderr__, sys.__stdout__):
        if stream is not None and stream.isatty():
            return stream.fileno()
    return None


def _cell_size() -> tuple[int, int] | None:
    """A terminal cell's width and height in pixels, when the kernel knows them."""
    fd = _terminal()
    if fd is None:
        return None
    import fcntl
    import struct
    import termios

    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, columns, width, height = struct.unpack("HHHH", packed)
    if not (rows and columns and width and height):
        return None
    return width // columns, height // rows


_loaded = False


def _load() -> None:
    """Import textual-image without its questions to the terminal (see the module doc)."""
    global _loaded
    if _loaded:
        return
    size = _cell_size()
    if size is not None and "TEXTUAL_CELL_WIDTH" not in os.environ:
        os.environ["TEXTUAL_CELL_WIDTH"], os.environ["TEXTUAL_CELL_HEIGHT"] = map(str, size)
    real = sys.__stdout__
    setattr(sys, "__stdout__", io.StringIO())  # noqa: B010 - not a terminal: no questions
    try:
        import textual_image.widget  # noqa: F401
    finally:
        setattr(sys, "__stdout__", real)  # noqa: B010
    _cache_halfcell_styles()
    _loaded = True


def _cache_halfcell_styles() -> None:
    """Make textual-image's half-block renderable reuse its colours and styles.

    It builds a Rich Color for each of the two pixels of every cell and a Style for the
    pair, afresh for every frame: at 170x47 cells that is most of a frame's 90 ms. A guest's
    screen has few colours (a text console: black, greys, a few more), so the same objects,
    looked up instead of built, draw the same cells in a sixth of the time; Textual's own
    style cache then hits too. The library's drawing is unchanged: its two module-level
    factories are wrapped in a cache.
    """
    import functools

    from rich.style import Style
    from textual_image.renderable import halfcell

    if getattr(halfcell, "_virtdeck_cached", False):
        return

    @functools.lru_cache(maxsize=1 << 16)
    def style(color: object = None, bgcolor: object = None) -> Style:
        return Style(color=color, bgcolor=bgcolor)  # type: ignore[arg-type]

    module: Any = halfcell
    module._map_pixel = functools.lru_cache(maxsize=1 << 16)(halfcell._map_pixel)
    module.Style = style
    module._virtdeck_cached = True


def show(widget: Any, image: PILImage) -> None:
    """Put ``image`` in a picture widget of :func:`image_widget`.

    textual-image's ``image`` setter asks for a new layout of the whole screen every time,
    right for a picture of another size, but a video's next frame of the same size only
    needs its cells repainted: for those (half-blocks; kitty and sixel pictures go through
    the setter) the widget's picture is replaced and the widget repainted, which is what
    the setter does apart from the layout. A new size also sets the widget's size styles
    again, which makes Textual measure it afresh.
    """
    current = getattr(widget, "_image", None)
    size, mode = getattr(current, "size", None), getattr(current, "mode", None)
    same = size == image.size and mode == image.mode
    if same and getattr(widget, "fast_frames", False) and hasattr(widget, "_renderable"):
        renderable = widget._renderable
        if renderable is not None:
            renderable.cleanup()
            widget._renderable = None
        widget._image = image
        widget.refresh()
        return
    widget.image = image
    widget.styles.width = widget.styles.height = "auto"


def image_widget(
    chosen: Protocol | None = None,
    *,
    id: str | None = None,  # noqa: A002 - Textual's word
    classes: str | None = None,
) -> Widget:
    """An empty picture widget drawing with ``chosen`` (default: :func:`protocol`); set its
    ``image`` to a PIL image. CSS ``width: auto; height: auto`` scales it to its container
    keeping the picture's aspect ratio."""
    _load()
    from textual_image.widget import HalfcellImage, SixelImage, TGPImage

    kind = chosen or protocol()
    classes_by_kind: dict[str, Any] = {"kitty": TGPImage, "sixel": SixelImage}
    cls = classes_by_kind.get(kind) or _merged_halfcell_class(HalfcellImage)
    widget: Widget = cls(id=id, classes=classes)
    return widget


_MERGED: Any = None


def _merged_halfcell_class(base: Any) -> Any:
    """textual-image's half-block widget, whose cells reach Textual as runs.

    The library yields one segment per cell; a screen is mostly runs of one colour (a text
    console's black), and Textual's cost is per segment. Neighbours of the same style are
    joined before Textual sees them: the same cells, a fraction of the segments."""
    global _MERGED
    if _MERGED is not None:
        return _MERGED
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.segment import Segment
    from textual.app import RenderResult as WidgetRender
    from textual_image.renderable.halfcell import Image as HalfcellRenderable

    class Merged:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
            # The library yields plain segments (cells and line ends), and its styles come
            # from the cache above: the same object for the same colours, so a run is the
            # cells whose style *is* the last one's.
            run: list[str] = []
            style: Any = None
            for segment in self.inner.__rich_console__(console, options):
                if segment.style is style and style is not None:
                    run.append(segment.text)
                    continue
                if run:
                    yield Segment("".join(run), style)
                run, style = [segment.text], segment.style
            if run:
                yield Segment("".join(run), style)

        def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Any:
            return self.inner.__rich_measure__(console, options)

    class HalfcellFrames(base, Renderable=HalfcellRenderable):  # type: ignore[misc,call-arg]
        #: graphics.show may swap its picture without a new layout
        fast_frames = True

        def render(self) -> WidgetRender:
            inner = super().render()
            return inner if isinstance(inner, str) else Merged(inner)

    _MERGED = HalfcellFrames
    return _MERGED
