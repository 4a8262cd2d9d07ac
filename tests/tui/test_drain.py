"""Draining a host: the plan's suggestion, the parallel limit, abort; on test-driver hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from drivers.test import simmigration
from drivers.test.driver import node_xml
from tests.tui.helpers import SIZE, build, loaded, select, settle, state_of, until, with_modes
from tui.app import VirtdeckApp
from tui.config import HostMode
from tui.migration import Candidate, JobState, suggest_targets
from tui.screens.drain import DrainScreen

GIB = 1 << 30


def hosts(tmp: Path, free_gib: dict[str, int]) -> str:
    """'src' (test:///default: test 8 GiB and web1 2 GiB running, db1 4 GiB paused) and
    empty hosts with the given memory."""
    listed = [("src", "test:///default", HostMode.NORMAL)]
    for name, gib in free_gib.items():
        node = tmp / f"{name}.xml"
        node.write_text(node_xml([], memory_kib=gib << 20))
        listed.append((name, f"test://{node}", HostMode.NORMAL))
    return with_modes(tmp, listed)


async def open_drain(pilot: Pilot[None], app: VirtdeckApp) -> DrainScreen:
    await select(pilot, app, "web1", "src")
    await pilot.press("M")
    await until(pilot, lambda: isinstance(app.screen, DrainScreen), what="the drain")
    screen = app.screen
    assert isinstance(screen, DrainScreen)
    await until(pilot, lambda: screen.planned, what="the plan")
    await pilot.pause()
    return screen


def summary(screen: DrainScreen) -> str:
    return str(screen.query_one("#drain-summary", Static).render())


def targets(screen: DrainScreen) -> dict[str, str | None]:
    names = {row.uuid: row.name for row in screen.rows}
    return {names[uuid]: target for uuid, target in screen.plan.items()}


def test_suggestion_spreads_by_free_memory() -> None:
    ok: dict[str, tuple[str, ...]] = {"a": (), "b": ()}
    cands = [
        Candidate("test", "u1", 8 * GIB, ok),
        Candidate("db1", "u2", 4 * GIB, ok),
        Candidate("web1", "u3", 2 * GIB, ok),
        Candidate("odd", "u4", 1 * GIB, {"a": ("Domain needs an emulator a lacks.",), "b": ()}),
        Candidate("huge", "u5", 64 * GIB, ok),
    ]
    chosen = suggest_targets(cands, {"a": 12 * GIB, "b": 10 * GIB})
    # biggest first to the host with the most left; none overfilled; a pre-flight
    # reason rules a host out; what fits nowhere stays
    assert chosen == {"u1": "a", "u2": "b", "u3": "b", "u4": "b"}


async def test_plan_suggests_and_can_be_edited(tmp_path: Path) -> None:
    app = build(tmp_path, uris=(), config=hosts(tmp_path, {"a": 12, "b": 10}))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_drain(pilot, app)
        # the crashed and shut-off domains are not in the plan
        assert [r.name for r in screen.rows] == ["db1", "test", "web1"]
        assert targets(screen) == {"test": "a", "db1": "b", "web1": "b"}
        assert summary(screen) == "3 of 3 domains would move."
        assert screen.check_action("run", ()) is True
        # t on db1 (the cursor's row) cycles b → stays → a; 8 + 4 GiB fit a's 12 exactly
        await pilot.press("t")
        assert targets(screen)["db1"] is None
        await pilot.press("t")
        assert targets(screen)["db1"] == "a"
        assert not screen.problems()
        # web1 to a too: 14 GiB on a host with 12 free; Run is off and the row says why
        await pilot.press("down", "down")
        while targets(screen)["web1"] != "a":
            await pilot.press("t")
        problems = screen.problems()
        assert problems and "the plan puts 14 GiB there" in next(iter(problems.values()))
        assert "cannot go where the plan sends them" in summary(screen)
        assert screen.check_action("run", ()) is None
        # a → b → stays: leave web1 where it is, fine again
        await pilot.press("t", "t")
        assert targets(screen)["web1"] is None
        assert not screen.problems()
        assert summary(screen) == "2 of 3 domains would move."


@pytest.mark.parametrize("parallel", [1, 2])
async def test_runs_at_most_n_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: int
) -> None:
    monkeypatch.setattr(simmigration, "LINK_RATE", 100e6)
    app = build(tmp_path, uris=(), config=hosts(tmp_path, {"a": 64}))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_drain(pilot, app)
        box = screen.query_one("#parallel", Input)
        box.value = str(parallel)
        await pilot.pause()
        await pilot.press("ctrl+r")
        run = screen.migration_run
        assert run is not None
        await until(pilot, lambda: run.finished, timeout=60, what="the drain")
        await pilot.pause(0.1)
        assert screen.most_running == parallel
        assert [v.state for v in run.views] == [JobState.DONE] * 3
        assert summary(screen).startswith("Finished: 3 of 3 migrated")
        for name, words in (
            ("test", "running (migrated)"),
            ("web1", "running (migrated)"),
            ("db1", "paused (user)"),  # it was paused: it stays paused
        ):
            await until(pilot, lambda n=name, w=words: state_of(app, n, "a") == w)  # type: ignore[misc]
            # The source's event reaches the table on its own host's stream: wait for it
            # too rather than read it the moment the destination's has arrived.
            await until(
                pilot,
                lambda n=name: state_of(app, n, "src") == "shut off (migrated)",  # type: ignore[misc]
            )
        await settle(app)
        assert not [n for n in app._notifications if n.severity == "error"]


async def test_abort_rolls_back_and_starts_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simmigration, "LINK_RATE", 2e6)  # each would take many seconds
    app = build(tmp_path, uris=(), config=hosts(tmp_path, {"a": 64}))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 5)
        screen = await open_drain(pilot, app)
        screen.query_one("#parallel", Input).value = "1"
        await pilot.pause()
        await pilot.press("ctrl+r")
        run = screen.migration_run
        assert run is not None

        def sending() -> bool:
            info = run.views[0].info
            return info is not None and info.status == "active"

        await until(pilot, sending, what="the first migration under way")
        assert [v.state for v in run.views][1:] == [JobState.WAITING] * 2
        await pilot.press("a")
        await until(pilot, lambda: run.finished, timeout=30, what="the abort")
        await pilot.pause(0.1)
        views = run.views
        assert [v.state for v in views] == [JobState.CANCELLED] * 3
        assert views[0].note == "rolled back: it goes on at src"
        assert [v.note for v in views[1:]] == ["not started", "not started"]
        text = summary(screen)
        assert text.startswith("Aborted: 0 of 3 migrated, 3 cancelled")
        assert "Rolled back (still on src): db1." in text
        await until(pilot, lambda: all(r.host != "a" for r in app.store.rows.values()))
        assert state_of(app, "db1", "src") == "paused (user)"
        assert state_of(app, "test", "src") == "running (booted)"
        assert state_of(app, "web1", "src") == "running (booted)"
