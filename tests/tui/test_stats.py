"""Statistics: the history and the cells (tui.stats), the table's columns and CPU sort
across hosts, the host strip, the details screen's stats tab."""

from __future__ import annotations

from pathlib import Path

import drivers
from drivers.model import DomainStats
from tests.tui.helpers import SIZE, build, find, loaded, main_screen, select, table, until
from tui.app import VirtdeckApp
from tui.demo import node_xml
from tui.screens.details import DetailsScreen
from tui.stats import (
    DomainFigures,
    Series,
    nice_bytes,
    nice_top,
    percent_text,
    rate_text,
    size_text,
    sparkline,
)
from tui.widgets.chart import Chart
from tui.widgets.host_bar import HostBar

# --- the history and the texts ------------------------------------------------------------


def test_a_series_keeps_one_value_a_second_with_gaps() -> None:
    series = Series()
    series.add(100, 1.0)
    series.add(101, 2.0)
    series.add(101, 3.0)  # the same second: replaced
    series.add(99, 9.0)  # older: ignored
    series.add(104, 4.0)  # two seconds without a sample
    assert list(series.values) == [1.0, 3.0, None, None, 4.0]
    assert series.tail(3) == [None, None, 4.0]
    assert series.tail(7) == [None, None, 1.0, 3.0, None, None, 4.0]
    series.add(10_000, 5.0)  # a long gap is capped at the history's length
    assert len(series.values) == 300 and series.latest == 5.0


def test_sparklines_scale_to_their_top_and_leave_gaps_blank() -> None:
    assert sparkline([0.0, 25.0, 50.0, 100.0], 4, 100.0) == "▁▃▅█"
    assert sparkline([None, None, 10.0, 10.0], 2, 10.0) == " █"
    # each character is the highest of its share
    assert sparkline([0.0, 100.0, 0.0, 0.0], 2, 100.0) == "█▁"
    assert sparkline([], 3, 1.0) == "   "


def test_figures_in_few_characters() -> None:
    assert percent_text(0.42) == "0.4%" and percent_text(12.4) == "12%"
    assert percent_text(340) == "340%"
    assert size_text(512) == "512B" and size_text(9.5 * 1024) == "9.5K"
    assert size_text(12 << 20) == "12M" and size_text(1.5 * (1 << 30)) == "1.5G"
    assert rate_text(2048) == "2.0K/s"
    assert nice_top(0.0) == 1.0 and nice_top(37.0) == 50.0 and nice_top(101.0) == 200.0
    assert nice_bytes(19.07 * (1 << 20)) == 20 * (1 << 20) and nice_bytes(900) == 1000


def test_a_domains_cells_are_made_once_per_sample() -> None:
    figures = DomainFigures()
    for second in range(60):
        stats = DomainStats(
            name="vm",
            uuid="u",
            wall=1000.0 + second,
            cpu_percent=float(second),
            rss_bytes=1 << 30,
            block_rd_rate=1000.0,
            block_wr_rate=24.0,
            net_rx_rate=0.0,
        )
        figures.update(stats, memory_kib=2 << 20)
    cpu, cpu_spark, rss, rss_spark, disk, _, net, net_spark = (c[0] for c in figures.cells)
    assert cpu == "59%" and cpu_spark == "▁▂▃▄▅▆▇█"
    assert rss == "1.0G" and rss_spark == "▅" * 8  # half of its 2 GiB
    assert disk == "1.0K" and net == "0B" and net_spark == "▁" * 8
    assert figures.cells[0][1] == -59.0  # the busiest sorts first
    figures.stopped(1060)
    assert figures.latest is None and figures.cells[0] == ("", float("inf"))


# --- on screen ---------------------------------------------------------------------------


def two_hosts(tmp_path: Path) -> str:
    """test:///default and a second host with a busy guest and an idle one."""
    node = tmp_path / "second.xml"
    node.write_text(
        node_xml("second", (("busy-1", 4096, 8, 1), ("idle-1", 1024, 1, 1), ("off-1", 512, 1, 5)))
    )
    return (
        '[[hosts]]\nname = "local"\nuri = "test:///default"\n\n'
        f'[[hosts]]\nname = "second"\nuri = "test://{node}"\n'
    )


def sampled(app: VirtdeckApp) -> bool:
    return all(
        r.figures is not None and r.figures.latest is not None
        for r in app.store.rows.values()
        if r.state.is_active
    )


async def test_stats_columns_show_and_seven_sorts_the_busiest_of_all_hosts_first(
    tmp_path: Path,
) -> None:
    app = build(tmp_path, uris=(), config=two_hosts(tmp_path))
    async with app.run_test(size=(170, 36)) as pilot:
        await loaded(pilot, app, 8)
        await until(pilot, lambda: sampled(app), what="a sample of every running domain")
        t = table(app)
        await until(pilot, lambda: "net_spark" in t.shown_columns, what="the stats columns")
        web1 = find(app, "web1")
        assert web1.figures is not None and web1.figures.latest is not None
        await until(pilot, lambda: t.cell_text(web1.key, "cpu").endswith("%"))
        assert t.cell_text(find(app, "build").key, "cpu") == ""  # shut off: no figures
        await pilot.press("7")
        await pilot.pause(0.3)
        cpu = {
            r.name: r.figures.latest.cpu_percent
            for r in app.store.rows.values()
            if r.figures is not None and r.figures.latest is not None
        }
        busiest = max(cpu, key=lambda name: cpu[name])
        first = t.cursor_key()
        assert t.row_texts(0)[2] == busiest, (t.row_texts(0), cpu)
        assert first is not None
        assert "sort: cpu ▼" in str(main_screen(app).query_one("#status").render())
        # the host strip: each host's CPU and memory next to its running count
        strip = str(main_screen(app).query_one(HostBar).render())
        assert "local 2/5 cpu " in strip and "second 2/3 cpu " in strip and "mem " in strip


async def test_a_stopped_domain_loses_its_figures_and_narrow_terminals_hide_columns(
    tmp_path: Path,
) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await until(pilot, lambda: sampled(app))
        t = table(app)
        await until(pilot, lambda: "cpu" in t.shown_columns)
        # 120 wide: the IP column, then room for the CPU figures only
        assert t.shown_columns[-3:] == ("ip", "cpu", "cpu_spark")
        web1 = find(app, "web1")
        conn = await drivers.open("test:///default")
        await (await conn.lookup("web1")).destroy()
        await until(pilot, lambda: t.cell_text(web1.key, "cpu") == "", timeout=5)
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: "cpu" not in t.shown_columns)
        await pilot.resize_terminal(200, 40)
        await until(pilot, lambda: "net_spark" in t.shown_columns)
        await conn.close()


async def test_the_details_screen_charts_the_last_minute_and_five(tmp_path: Path) -> None:
    from tui.demo import fill_stats

    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await until(pilot, lambda: sampled(app))
        fill_stats(app)
        await select(pilot, app, "test")
        await pilot.press("enter", "t")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        screen = app.screen
        assert isinstance(screen, DetailsScreen)
        await pilot.pause(0.2)
        minute = screen.query_one("#chart-cpu-60", Chart)
        five = screen.query_one("#chart-cpu-300", Chart)
        assert len(minute.values) == 60 and len(five.values) == 300
        assert all(v is not None for v in five.values)
        summary = str(screen.query_one("#stats-summary").render())
        assert "CPU " in summary and "vCPUs:" in summary and "balloon" in summary
        assert "read " in summary and "received " in summary


async def test_a_disconnected_host_stops_sending_and_its_figures_go(tmp_path: Path) -> None:
    app = build(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        await until(pilot, lambda: sampled(app))
        host = next(iter(app.store.hosts))
        assert app.store.hosts[host].figures is not None
        await app.disconnect_host(host)
        await pilot.pause(0.1)
        assert app.store.hosts[host].figures is None
        assert not [w for w in app.workers if w.group == "stats" and not w.is_finished]
