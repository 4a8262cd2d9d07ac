"""``python -m bench`` end to end, on its cheapest benchmark, so the harness cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_scaling_run_prints_both_tables_and_writes_json(short_tmp: Path) -> None:
    out = short_tmp / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "scaling", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    assert "## virtdeck benchmarks (--quick)" in text
    assert "machine: " in text and " cores, load " in text and "QEMU " in text
    assert "### Scaling: test driver behind a real daemon" in text
    assert "1 benchmarks, 0 failed to run" in text
    data = json.loads(out.read_text())
    assert data["quick"] is True
    (scaling,) = data["benchmarks"]
    assert scaling["name"] == "scaling" and scaling["failed"] is None
    points = scaling["scaling"]
    assert [p["domains"] for p in points] == [10, 100]
    for point in points:
        assert point["start_to_list"] > 0 and point["start_cpu"] > 0
        assert point["list_cpu"]["n"] == 3
        assert point["list_cli"]["n"] == 3 and point["list_cli"]["median"] > 0
        assert point["rss_kib"] > 1024
        assert point["event"]["n"] == 20
    assert any("quick" in note for note in scaling["notes"])


def test_unknown_benchmark_is_refused_with_the_names_to_choose_from() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nosuch"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "no benchmark called nosuch; choose from core, oneshot" in done.stderr
