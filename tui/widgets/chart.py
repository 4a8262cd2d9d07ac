"""A small history chart: block characters a few rows high, the scale on the left.

Each column shows the highest value of its share of the values (so a one-second spike stays
visible in a five-minute chart); eighth blocks give each row eight steps. The bars take the
colour of a theme variable (``spark-cpu`` …).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

__all__ = ["Chart"]

_EIGHTHS = " ▁▂▃▄▅▆▇█"
AXIS = 7
"""Columns taken by the scale's labels (and one space after them)."""


class Chart(Widget):
    """``values`` (oldest first; None where there is none) against ``top``."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"chart--axis", "chart--empty"}
    DEFAULT_CSS = """
    Chart {
        height: 4;
        width: 1fr;
        & > .chart--axis {
            color: $text-muted;
        }
        & > .chart--empty {
            color: $text-muted;
        }
    }
    """

    def __init__(
        self,
        colour: str,
        label: Callable[[float], str],
        *,
        id: str | None = None,  # noqa: A002 - Textual's name
    ) -> None:
        super().__init__(id=id)
        self.colour = colour
        """The theme variable the bars are drawn in."""
        self.label = label
        self.values: Sequence[float | None] = ()
        self.top = 1.0
        self._columns: list[float | None] | None = None

    def show(self, values: Sequence[float | None], top: float) -> None:
        self.values = values
        self.top = top if top > 0 else 1.0
        self._columns = None
        self.refresh()

    def on_resize(self) -> None:
        self._columns = None

    def _bucketed(self, width: int) -> list[float | None]:
        if self._columns is None or len(self._columns) != width:
            values = self.values
            count = len(values)
            columns: list[float | None] = []
            for i in range(width):
                lo, hi = i * count // width, max(i * count // width + 1, (i + 1) * count // width)
                chunk = [v for v in values[lo:hi] if v is not None] if count else []
                columns.append(max(chunk) if chunk else None)
            self._columns = columns
        return self._columns

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        height = max(1, self.size.height)
        base = self.rich_style
        axis_style = base + self.get_component_rich_style("chart--axis")
        if y == 0:
            axis = self.label(self.top)
        elif y == height - 1:
            axis = self.label(0.0)
        else:
            axis = ""
        segments = [Segment(axis[: AXIS - 1].rjust(AXIS - 1) + "▕", axis_style)]
        plot = max(0, width - AXIS)
        colour = self.app.theme_variables.get(self.colour)
        bar_style = base + Style(color=colour) if colour else base
        row_from_bottom = height - 1 - y
        chars = []
        for value in self._bucketed(plot):
            if value is None:
                chars.append(" ")
                continue
            eighths = round(max(0.0, value) / self.top * height * 8)
            if value > 0:
                eighths = max(1, eighths)
            filled = max(0, min(8, eighths - row_from_bottom * 8))
            if not filled and not row_from_bottom:
                filled = 1  # sampled, and zero: a baseline (a gap means no sample)
            chars.append(_EIGHTHS[filled])
        segments.append(Segment("".join(chars), bar_style))
        return Strip(segments).extend_cell_length(width, base).crop(0, width)
