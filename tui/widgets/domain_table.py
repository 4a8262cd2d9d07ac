"""The merged domain table: one row per (host, uuid), cells updated in place.

Cells are plain text drawn as segments, never parsed as markup (a guest's name must never
be), and made inert with :func:`tui.text.inert`. Colours come from the theme's variables
(``state-*``, ``host-*``, ``spark-*``), handed in as a :class:`Look`.

Hosts that send statistics add four figures, each a value and a sparkline of the last minute
(:mod:`tui.stats` makes their texts once per sample): CPU, memory in use (RSS), disk and
network rates. They show once any sample came, as many as the width allows (CPU first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import ClassVar, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from drivers.model import DomainState
from tui.state import STATE_ORDER, DomainRow, Key, memory_text, uptime_text
from tui.stats import NO_CELLS
from tui.text import inert

_BOLD = Style(bold=True)
_PLAIN = Style()

COLUMNS: tuple[tuple[str, str, int], ...] = (
    # key, label, width (host and name widen to fit, up to HOST_MAX and NAME_MAX)
    ("mark", " ", 1),
    ("host", "Host", 6),
    ("name", "Name", 6),
    ("state", "State", 20),
    ("vcpus", "vCPUs", 7),
    ("memory", "Memory", 8),
    ("uptime", "Uptime", 8),
    ("ip", "IP", 15),
    # the statistics: a value, then its sparkline (hidden until a host sends statistics)
    ("cpu", "CPU", 5),
    ("cpu_spark", "", 8),
    ("rss", "RSS", 5),
    ("rss_spark", "", 8),
    ("disk", "Disk/s", 6),
    ("disk_spark", "", 8),
    ("net", "Net/s", 6),
    ("net_spark", "", 8),
)
SORTABLE = ("host", "name", "state", "vcpus", "memory", "uptime", "cpu", "rss", "disk", "net")
#: Columns whose first sort shows the biggest first (the busiest domain on top).
BIGGEST_FIRST = frozenset({"cpu", "rss", "disk", "net"})
_COLUMN_INDEX = {key: index for index, (key, _, _) in enumerate(COLUMNS)}
_FIRST_STATS = _COLUMN_INDEX["cpu"]
_IP_COLUMN = _COLUMN_INDEX["ip"]
BASE_COLUMNS = tuple(range(_FIRST_STATS))
"""The columns always shown."""
STATS_GROUPS: tuple[tuple[int, int], ...] = tuple(
    (_COLUMN_INDEX[k], _COLUMN_INDEX[k] + 1) for k in ("cpu", "rss", "disk", "net")
)
"""The statistics columns (value, sparkline), in the order they get room."""
_SPARK_STYLES = ("spark-cpu", "spark-memory", "spark-disk", "spark-net")
NAME_MAX = 32
HOST_MAX = 14


Cell = tuple[str, object, str, bool]
"""One cell: (text, how it sorts, style name, right-aligned).

A plain tuple of strings and numbers (a :meth:`Look.style` name rather than a Style), so
that the garbage collector stops tracking it: a table holds seven per domain, and every
event replaces one of them; tracked, they would lengthen every full collection.
"""

PLAIN, BOLD = "", "bold"
"""Style names of cells (besides theme variables and ``host:NAME``)."""


def row_id(key: Key) -> str:
    return f"{key[0]}\x1f{key[1]}"


def key_of(row_key: str) -> Key:
    host, _, uuid = row_key.partition("\x1f")
    return host, uuid


class Look:
    """What rendering needs from the app: theme colours, host colours, the clock."""

    def __init__(
        self,
        variables: Mapping[str, str] | None = None,
        host_colors: Mapping[str, str] | None = None,
        now: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.variables: Mapping[str, str] = {} if variables is None else variables
        self.host_colors: Mapping[str, str] = {} if host_colors is None else host_colors
        self.now = now
        self._styles: dict[str, Style] = {}

    def style(self, name: str) -> Style:
        """The Style a cell's style name stands for: PLAIN, BOLD, ``host:NAME`` or a theme
        variable (``state-running``, …)."""
        style = self._styles.get(name)
        if style is None:
            if name == PLAIN:
                style = _PLAIN
            elif name == BOLD:
                style = _BOLD
            elif name.startswith("host:"):
                colour = self.host_colors.get(name[5:])
                style = Style(color=colour) if colour else _PLAIN
            else:
                value = self.variables.get(name)
                style = Style(color=value) if value else _PLAIN
            self._styles[name] = style
        return style

    def state_style(self, state: DomainState) -> Style:
        return self.style(state_style_name(state))


def state_style_name(state: DomainState) -> str:
    """The theme variable that colours a state."""
    if state is DomainState.RUNNING:
        return "state-running"
    if state is DomainState.PAUSED or state is DomainState.PMSUSPENDED:
        return "state-paused"
    if state is DomainState.CRASHED:
        return "state-crashed"
    if state is DomainState.SHUTOFF:
        return "state-shutoff"
    return "state-other"


class RowLook(NamedTuple):
    """How one row should look: what the cells are made from (compared to skip work)."""

    lost: bool = False
    marked: bool = False
    busy: str = ""


def cell_inputs(row: DomainRow, look: Look, how: RowLook) -> tuple[object, ...]:
    """Per column, the values its cell is made from."""
    lost = how.lost
    figures = row.figures
    stats = NO_CELLS if lost or figures is None or not row.state.is_active else figures.cells
    return (
        (bool(how.busy), how.marked),
        (row.host, lost),
        (row.name, lost),
        (lost, row.state, row.reason),
        (row.vcpus, lost),
        (row.memory_kib, lost),
        ("" if lost else uptime_text(row, look.now()), row.started),
        ("" if lost or not row.state.is_active else row.ip,),
        *stats,
    )


def make_cell(
    column: int, row: DomainRow, look: Look, how: RowLook, inputs: tuple[object, ...]
) -> Cell:
    """The cell of ``column`` (an index into COLUMNS)."""
    lost = how.lost
    if column == 0:
        if how.busy:
            return ("⟳", 0, "state-other", False)
        return ("●" if how.marked else " ", 0, "state-paused", False)
    if column == 1:
        host = inert(row.host, one_line=True)
        return (host, row.host.lower(), "state-lost" if lost else "host:" + row.host, False)
    if column == 2:
        name = inert(row.name, one_line=True)
        return (name, name.lower(), "state-lost" if lost else BOLD, False)
    if column == 3:
        if lost:
            return ("lost", (99, row.host, row.name.lower()), "state-lost", False)
        words = row.words
        return (words, (STATE_ORDER.get(row.state, 9), words), state_style_name(row.state), False)
    if column >= _FIRST_STATS:
        figure = inputs[column]
        assert isinstance(figure, tuple)
        spark = (column - _FIRST_STATS) % 2 == 1
        style = _SPARK_STYLES[(column - _FIRST_STATS) // 2] if spark else PLAIN
        return (str(figure[0]), figure[1], style, not spark)
    if column == _IP_COLUMN:
        address = inputs[column]
        assert isinstance(address, tuple)
        # guest-provided (the agent's answer): inert, like every cell
        text = inert(str(address[0]), one_line=True)
        return (text, text, "state-lost" if lost else PLAIN, False)
    other = "state-lost" if lost else PLAIN
    if column == 4:
        return ("" if row.vcpus is None else str(row.vcpus), row.vcpus or 0, other, True)
    if column == 5:
        return (memory_text(row.memory_kib), row.memory_kib or 0, other, True)
    uptime = inputs[6]
    assert isinstance(uptime, tuple)
    started = row.started if row.started and not lost else None
    return (str(uptime[0]), -started if started else float("-inf"), other, True)


class DomainTable(ScrollView, can_focus=True):
    """The domain table: a header line and one cached line per row.

    A Line-API widget rather than a DataTable: a DataTable re-renders every visible cell
    whenever any cell changes, which under a burst of events costs more than the events
    themselves. Here a changed row re-renders that row only, and moving the cursor redraws
    two lines. The screen decides which rows it holds; the table keeps them sorted.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "domain-table--header",
        "domain-table--cursor",
        "domain-table--cursor-blurred",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="table.up", tooltip="Move up a row"),
        Binding(
            "down,j", "cursor(1)", "Down", show=False, id="table.down", tooltip="Move down a row"
        ),
        Binding(
            "pageup",
            "page(-1)",
            "Page up",
            show=False,
            id="table.page_up",
            tooltip="Move up a screenful",
        ),
        Binding(
            "pagedown",
            "page(1)",
            "Page down",
            show=False,
            id="table.page_down",
            tooltip="Move down a screenful",
        ),
        Binding(
            "home,g",
            "first",
            "First row",
            show=False,
            id="table.top",
            tooltip="Go to the first row",
        ),
        Binding(
            "end,G",
            "last",
            "Last row",
            show=False,
            id="table.bottom",
            tooltip="Go to the last row",
        ),
        Binding(
            "left",
            "scroll_left",
            "Scroll left",
            show=False,
            id="table.left",
            tooltip="Scroll the columns left (narrow terminals)",
        ),
        Binding(
            "right",
            "scroll_right",
            "Scroll right",
            show=False,
            id="table.right",
            tooltip="Scroll the columns right (narrow terminals)",
        ),
    ]

    DEFAULT_CSS = """
    DomainTable {
        height: 1fr;
        background: $background;
        color: $foreground;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
        & > .domain-table--header {
            background: $panel;
            color: $foreground;
            text-style: bold;
        }
        & > .domain-table--cursor {
            background: $primary 40%;
        }
        & > .domain-table--cursor-blurred {
            background: $primary 20%;
        }
    }
    """

    class CursorMoved(Message):
        """The cursor is on another row (or the row under it changed)."""

        def __init__(self, table: DomainTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> DomainTable:
            return self.table

    class HeaderClicked(Message):
        """A column's header was clicked."""

        def __init__(self, table: DomainTable, column: str) -> None:
            super().__init__()
            self.table = table
            self.column = column

        @property
        def control(self) -> DomainTable:
            return self.table

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.look = Look()
        self.sort_column = "host"
        self.sort_reverse = False
        self.cursor_row = 0
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, list[Cell]] = {}
        self._inputs: dict[str, tuple[object, ...]] = {}
        self._lines: dict[str, Strip] = {}
        self._widths = [width for _, _, width in COLUMNS]
        self._shown: tuple[int, ...] = BASE_COLUMNS
        """The columns drawn, in order (statistics ones as the width allows)."""
        self._show_stats = False
        self._changed: set[str] = set()
        self._reshaped = False
        """Rows were added or a column widened since the last repaint (or sort)."""
        self._header: Strip | None = None
        self._base_style: Style | None = None

    # --- geometry -------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def _total_width(self) -> int:
        widths = self._widths
        return sum(widths[i] + 2 for i in self._shown)

    @property
    def descending(self) -> bool:
        """The rows go from the biggest value down (figures sort that way first)."""
        return self.sort_reverse != (self.sort_column in BIGGEST_FIRST)

    @property
    def show_stats(self) -> bool:
        """Whether the statistics columns may show (once a host sent statistics)."""
        return self._show_stats

    @show_stats.setter
    def show_stats(self, value: bool) -> None:
        if value != self._show_stats:
            self._show_stats = value
            self._choose_columns()

    @property
    def shown_columns(self) -> tuple[str, ...]:
        """The keys of the columns drawn (tests and tools)."""
        return tuple(COLUMNS[i][0] for i in self._shown)

    def _choose_columns(self) -> None:
        """The base columns, then each statistics group the width has room for."""
        shown = list(BASE_COLUMNS)
        if self._show_stats:
            widths = self._widths
            room = self.scrollable_content_region.width if self.size.width else 1 << 16
            total = sum(widths[i] + 2 for i in shown)
            for group in STATS_GROUPS:
                extra = sum(widths[i] + 2 for i in group)
                if total + extra <= room:
                    shown.extend(group)
                    total += extra
        if tuple(shown) != self._shown:
            self._shown = tuple(shown)
            self._lines.clear()
            self._header = None
            self._resize_virtual()
            self.refresh()

    def _resize_virtual(self) -> None:
        self.virtual_size = Size(self._total_width, len(self._order) + 1)

    @property
    def _page(self) -> int:
        return max(1, self.size.height - 1 - (1 if self.show_horizontal_scrollbar else 0))

    def on_resize(self) -> None:
        self._choose_columns()
        self._scroll_to_cursor()

    # --- rows -----------------------------------------------------------------------------

    def has(self, key: Key) -> bool:
        return row_id(key) in self._index

    def get_row_index(self, rid: str) -> int:
        return self._index[rid]

    def cell_text(self, key: Key, column: str) -> str:
        """What a cell shows (tests and tools)."""
        return self._cells[row_id(key)][_COLUMN_INDEX[column]][0]

    def row_texts(self, index: int) -> list[str]:
        return [c[0] for c in self._cells[self._order[index]]]

    def cursor_key(self) -> Key | None:
        if not self._order:
            return None
        return key_of(self._order[min(self.cursor_row, len(self._order) - 1)])

    def _fit(self, row: DomainRow) -> bool:
        """Widen the host and name columns for ``row``; True when a width changed."""
        changed = False
        for index, text, cap in ((1, row.host, HOST_MAX), (2, row.name, NAME_MAX)):
            width = min(cap, cell_len(inert(text, one_line=True)))
            if width > self._widths[index]:
                self._widths[index] = width
                changed = True
        if changed:
            self._lines.clear()
            self._header = None
            self._reshaped = True
            if self._show_stats:
                self._choose_columns()
        return changed

    def clear_rows(self) -> None:
        self._order.clear()
        self._index.clear()
        self._cells.clear()
        self._inputs.clear()
        self._lines.clear()

    def fill(self, rows: Iterable[tuple[DomainRow, RowLook]]) -> None:
        """Replace every row (a filter, sort or theme change); keeps the cursor's domain."""
        keep = self.cursor_key()
        self.clear_rows()
        self._header = None
        self._base_style = None
        look = self.look
        for row, how in rows:
            inputs = cell_inputs(row, look, how)
            self._fit(row)
            rid = row_id(row.key)
            self._cells[rid] = [make_cell(i, row, look, how, inputs) for i in range(len(COLUMNS))]
            self._inputs[rid] = inputs
            self._order.append(rid)
        self.resort(keep)

    def put(self, row: DomainRow, how: RowLook) -> tuple[bool, bool]:
        """Add the row or update the cells that changed; (added, its sort key changed)."""
        rid = row_id(row.key)
        look = self.look
        inputs = cell_inputs(row, look, how)
        old = self._inputs.get(rid)
        if old is None:
            self._fit(row)
            self._cells[rid] = [make_cell(i, row, look, how, inputs) for i in range(len(COLUMNS))]
            self._inputs[rid] = inputs
            self._index[rid] = len(self._order)
            self._order.append(rid)
            self._reshaped = True  # sized and redrawn once per batch, by repaint_changed
            return True, True
        if old == inputs:
            return False, False
        self._inputs[rid] = inputs
        cells = self._cells[rid]
        sort_index = _COLUMN_INDEX[self.sort_column]
        resort = False
        for index, (before, after) in enumerate(zip(old, inputs, strict=True)):
            if before != after:
                cells[index] = make_cell(index, row, look, how, inputs)
                resort = resort or index == sort_index
        if old[1] != inputs[1] or old[2] != inputs[2]:
            self._fit(row)
        self._lines.pop(rid, None)
        self._changed.add(rid)
        return False, resort

    def stale_uptimes(self, rows: Iterable[DomainRow]) -> Iterator[DomainRow]:
        """Those of ``rows`` (shown, on connected hosts) whose uptime reads differently now."""
        now = self.look.now()
        inputs = self._inputs
        for row in rows:
            old = inputs.get(row_id(row.key))
            if old is not None and old[6] != (uptime_text(row, now), row.started):
                yield row

    def repaint_changed(self) -> None:
        """Redraw the visible rows that :meth:`put` changed (one refresh for all of them).

        When rows were added or a column widened, the table is resized and redrawn whole,
        once for the batch (per row, resizing costs more than the row itself).
        """
        if self._reshaped:
            self._reshaped = False
            self._changed.clear()
            self._resize_virtual()
            self.refresh()
            return
        if not self._changed:
            return
        top = round(self.scroll_offset.y)
        bottom = top + self.size.height
        width = self.size.width
        index = self._index
        regions = [
            Region(0, i - top + 1, width, 1)
            for rid in self._changed
            if (i := index.get(rid, -1)) >= top and i < bottom
        ]
        self._changed.clear()
        if regions:
            self.refresh(*regions)

    def drop(self, key: Key) -> None:
        rid = row_id(key)
        if rid not in self._index:
            return
        keep = self.cursor_key()
        self._order.remove(rid)
        self._cells.pop(rid, None)
        self._inputs.pop(rid, None)
        self._lines.pop(rid, None)
        self._reindex()
        if keep is not None and keep != key and row_id(keep) in self._index:
            self.cursor_row = self._index[row_id(keep)]
        self.cursor_row = max(0, min(self.cursor_row, len(self._order) - 1))
        self._resize_virtual()
        self.refresh()

    def _reindex(self) -> None:
        self._index = {rid: i for i, rid in enumerate(self._order)}

    def resort(self, keep: Key | None = None) -> None:
        """Sort by the chosen column (then host, then name), keeping the cursor's domain."""
        if keep is None:
            keep = self.cursor_key()
        column = _COLUMN_INDEX[self.sort_column]
        host, name = _COLUMN_INDEX["host"], _COLUMN_INDEX["name"]
        ties = (name,) if column == host else (host,) if column == name else (host, name)
        cells = self._cells

        def sort_key(rid: str) -> tuple[object, ...]:
            row = cells[rid]
            return (row[column][1], *(row[i][1] for i in ties))

        self._order.sort(key=sort_key, reverse=self.sort_reverse)
        self._reindex()
        self._header = None
        if keep is not None and row_id(keep) in self._index:
            self.cursor_row = self._index[row_id(keep)]
        self.cursor_row = max(0, min(self.cursor_row, len(self._order) - 1))
        self._reshaped = False
        self._resize_virtual()
        self._scroll_to_cursor()
        self.refresh()

    def restyle(self) -> None:
        """Forget every rendered line (after a theme change)."""
        self._base_style = None
        self._lines.clear()
        self._header = None
        self.refresh()

    # --- the cursor -----------------------------------------------------------------------

    def move_cursor(self, row: int, animate: bool = False, scroll: bool = True) -> None:
        if not self._order:
            return
        row = max(0, min(row, len(self._order) - 1))
        old = self.cursor_row
        if row == old:
            return
        self.cursor_row = row
        self._refresh_row(old)
        self._refresh_row(row)
        if scroll:
            self._scroll_to_cursor()
        self.post_message(self.CursorMoved(self))

    def _scroll_to_cursor(self) -> None:
        top = round(self.scroll_offset.y)
        page = self._page
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + page:
            self.scroll_to(y=self.cursor_row - page + 1, animate=False, immediate=True)

    def _refresh_row(self, index: int) -> None:
        top = round(self.scroll_offset.y)
        if top <= index < top + self.size.height:
            self.refresh(Region(0, index - top + 1, self.size.width, 1))

    def action_cursor(self, step: int) -> None:
        self.move_cursor(self.cursor_row + step)

    def action_page(self, step: int) -> None:
        self.move_cursor(self.cursor_row + step * self._page)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._order) - 1)

    def on_click(self, event: events.Click) -> None:
        x = event.x + round(self.scroll_offset.x)
        if event.y == 0:
            edge = 0
            for index in self._shown:
                edge += self._widths[index] + 2
                if x < edge:
                    key = COLUMNS[index][0]
                    self.post_message(self.HeaderClicked(self, key.removesuffix("_spark")))
                    return
            return
        self.move_cursor(round(self.scroll_offset.y) + event.y - 1)

    def on_focus(self) -> None:
        self._refresh_row(self.cursor_row)

    def on_blur(self) -> None:
        self._refresh_row(self.cursor_row)

    # --- rendering ------------------------------------------------------------------------

    def _segments(self, cells: list[Cell], base: Style, over: Style | None) -> Strip:
        segments: list[Segment] = []
        style_of = self.look.style
        widths = self._widths
        for index in self._shown:
            text, _, style_name, right = cells[index]
            width = widths[index]
            length = cell_len(text)
            if length > width:
                text = set_cell_size(text, max(0, width - 1)) + "…" if width > 1 else text[:width]
                length = width
            pad = width - length
            if right:
                text = " " * pad + text
            else:
                text = text + " " * pad
            style = base + style_of(style_name)
            if over is not None:
                style = style + over
            segments.append(Segment(" " + text + " ", style))
        return Strip(segments, self._total_width)

    def _header_strip(self) -> Strip:
        if self._header is None:
            style = self.get_component_rich_style("domain-table--header")
            arrow = "▼" if self.descending else "▲"
            sorted_by = self.sort_column
            labels: list[Cell] = []
            for key, label, _ in COLUMNS:
                if key == sorted_by and sorted_by not in BIGGEST_FIRST:
                    label += " " + arrow
                elif key == f"{sorted_by}_spark":
                    label = arrow  # above the sparkline: the figure's label fills its column
                labels.append((label, 0, PLAIN, False))
            self._header = self._segments(labels, style, None)
        return self._header

    #: Rendered lines kept for rows (a scroll redraws every visible line): when more are
    #: kept than this many screenfuls, they are all dropped (and the visible ones redrawn).
    LINE_CACHE_PAGES = 4

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = round(self.scroll_offset.x), round(self.scroll_offset.y)
        width = self.size.width
        base = self._base_style
        if base is None:
            base = self._base_style = self.rich_style  # costly: it walks the ancestors
        if y == 0:
            strip = self._header_strip()
            header_style = self.get_component_rich_style("domain-table--header")
            return strip.crop_extend(scroll_x, scroll_x + width, header_style)
        index = scroll_y + y - 1
        if index >= len(self._order):
            return Strip.blank(width, base)
        rid = self._order[index]
        if index == self.cursor_row:
            cursor = self.get_component_rich_style(
                "domain-table--cursor" if self.has_focus else "domain-table--cursor-blurred"
            )
            over = Style(bgcolor=cursor.bgcolor, bold=True)
            strip = self._segments(self._cells[rid], base, over)
            return strip.crop_extend(scroll_x, scroll_x + width, base + over)
        else:
            cached = self._lines.get(rid)
            if cached is None:
                if len(self._lines) > self.LINE_CACHE_PAGES * max(32, self.size.height):
                    self._lines.clear()  # rows scrolled past: keep the collector's work short
                cached = self._lines[rid] = self._segments(self._cells[rid], base, None)
            strip = cached
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base_style = None
        self._lines.clear()
        self._header = None
