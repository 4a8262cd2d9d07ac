"""The harness's table and JSON (bench/results.py), from rows made here."""

from __future__ import annotations

import json

from bench.results import (
    Figure,
    Report,
    Row,
    ScalePoint,
    main_table,
    markdown,
    scaling_table,
    to_json,
)


def test_figure_is_median_and_nearest_rank_p99() -> None:
    fig = Figure.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert fig == Figure(3.0, 5.0, 5)
    assert Figure.of([]) is None
    assert Figure.single(7.0) == Figure(7.0, 7.0, 1)
    assert Figure.single(None) is None


def test_ratio_is_ours_over_the_peer_and_absent_without_a_peer() -> None:
    row = Row("list", "ms", Figure(30.0, 40.0, 9), Figure(20.0, 25.0, 9), "virsh")
    assert row.ratio == 1.5
    assert Row("list", "ms", Figure(30.0, 40.0, 9)).ratio is None


def test_main_table_has_one_line_per_row_and_says_which_failed() -> None:
    ok = Report("oneshot")
    ok.add(
        Row(
            "list --all, 1 defined",
            "ms",
            Figure(30.0, 41.0, 9),
            Figure(20.0, 22.5, 9),
            "virsh",
            "≤ 1.5x virsh",
            True,
        )
    )
    ok.add(Row("RSS", "KiB", Figure.single(2048.0), target="report"))
    broken = Report("migration", failed="RuntimeError: no guest")
    lines = main_table([ok, broken])
    head = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert head == [
        "metric",
        "virtdeck median / p99",
        "peer median / p99",
        "ratio",
        "target",
        "pass/fail",
    ]
    body = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert body[0] == [
        "oneshot: list --all, 1 defined",
        "30.0 ms / 41.0 ms",
        "virsh: 20.0 ms / 22.5 ms",
        "1.50",
        "≤ 1.5x virsh",
        "pass",
    ]
    assert body[1] == ["oneshot: RSS", "2.0 MiB", "-", "-", "report", "-"]
    assert body[2] == [
        "migration: not measured",
        "RuntimeError: no guest",
        "-",
        "-",
        "-",
        "FAIL",
    ]
    # every line has the same width: the table also reads as plain text
    assert len({len(line) for line in lines}) == 1


def test_scaling_table_shows_the_marginal_cpu_cost_of_each_step() -> None:
    def point(
        domains: int, start: float, cpu: float, list_ms: float, list_cpu: float
    ) -> ScalePoint:
        return ScalePoint(
            domains,
            start,
            cpu,
            Figure(list_ms, list_ms + 10, 9),
            Figure(list_cpu, list_cpu, 9),
            (30 + domains / 100 * 3) * 1024.0,
            Figure(0.5, 0.9, 200),
        )

    lines = scaling_table(
        [point(10, 200.0, 150.0, 60.0, 40.0), point(110, 300.0, 180.0, 70.0, 45.0)]
    )
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert rows[0][:3] == ["10", "200 ms (150 ms)", "-"]
    # per 100 more domains: +30 ms of the daemon's CPU, +5 ms of the CLI's; 3 MiB over 100
    # domains is 30.7 KiB each
    assert rows[1][:7] == [
        "110",
        "300 ms (180 ms)",
        "+30.0",
        "70.0 ms / 80.0 ms (45.0 ms)",
        "+5.0",
        "33.3 MiB",
        "+30.7",
    ]
    assert scaling_table([]) == []


def test_json_holds_the_machine_every_row_with_its_ratio_and_the_scaling() -> None:
    report = Report("scaling", notes=["3 runs"])
    report.add(Row("x", "ms", Figure(2.0, 3.0, 5), Figure(4.0, 5.0, 5), "virsh", "", None))
    one = Figure(1.0, 1.0, 1)
    report.scaling.append(ScalePoint(10, 1.0, 1.0, one, one, 1.0, one))
    data = json.loads(to_json({"cores": 2}, [report], quick=True))
    assert data["machine"] == {"cores": 2}
    assert data["quick"] is True
    (bench,) = data["benchmarks"]
    assert bench["rows"][0]["ratio"] == 0.5
    assert bench["rows"][0]["ours"] == {"median": 2.0, "p99": 3.0, "n": 5}
    assert bench["scaling"][0]["domains"] == 10
    assert bench["notes"] == ["3 runs"]


def test_markdown_pads_cells() -> None:
    assert markdown(["a", "bb"], [["ccc", "d"]]) == [
        "| a   | bb |",
        "|-----|----|",
        "| ccc | d  |",
    ]
