"""Snapshots of the forms at 120x40: what each should show is in its docstring.

Regenerate with ``pytest tests/tui_forms/test_snapshots.py --snapshot-update`` and look at
the new SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import RadioButton

from drivers.api import Connection
from tests.tui_forms.helpers import FIXED_XML, SIZE, FormHost, fill, still, until
from tui.screens.edit_xml import EditXmlScreen, XmlDiffScreen
from tui.screens.new_domain import DEBOUNCE, NewDomainScreen

SnapCompare = Callable[..., bool]


def new_domain_app() -> FormHost:
    return FormHost(lambda conns: NewDomainScreen(conns, "local"))


async def form_ready(pilot: Pilot[None]) -> NewDomainScreen:
    app = pilot.app
    assert isinstance(app, FormHost)
    await until(pilot, lambda: isinstance(app.form, NewDomainScreen) and app.screen is app.form)
    screen = app.form
    assert isinstance(screen, NewDomainScreen)
    await until(pilot, lambda: screen.names is not None)
    still(screen)
    await pilot.pause(DEBOUNCE + 0.05)
    return screen


def test_new_domain_empty(snap_compare: SnapCompare) -> None:
    """The empty form: name focused, first ISO chosen, a new 10 GiB qcow2 disk, user NAT,
    VNC and serial on; the preview shows the XML; Define is disabled and the hint line
    asks for a name."""

    async def run_before(pilot: Pilot[None]) -> None:
        await form_ready(pilot)

    assert snap_compare(new_domain_app(), terminal_size=SIZE, run_before=run_before)


def test_new_domain_with_errors(snap_compare: SnapCompare) -> None:
    """A taken name and 8 MiB of memory typed in, and direct kernel boot chosen: both
    errors show in red under their fields, whose inputs are marked invalid; the kernel
    field, not typed in yet, stays calm while the hint line asks for it; Define is
    disabled."""

    async def run_before(pilot: Pilot[None]) -> None:
        screen = await form_ready(pilot)
        await fill(pilot, "#memory", "8")
        screen.query_one("#boot-kernel", RadioButton).value = True
        await fill(pilot, "#name", "web1")
        await pilot.pause(DEBOUNCE + 0.05)

    assert snap_compare(new_domain_app(), terminal_size=SIZE, run_before=run_before)


async def define_fixed(conns: dict[str, Connection]) -> None:
    await conns["local"].define_xml(FIXED_XML)
    await (await conns["local"].lookup("snap")).start()


def edit_app() -> FormHost:
    return FormHost(
        lambda conns: EditXmlScreen(conns["local"], "snap", True, host="local"),
        prepare=define_fixed,
    )


async def editor_ready(pilot: Pilot[None]) -> EditXmlScreen:
    app = pilot.app
    assert isinstance(app, FormHost)
    await until(pilot, lambda: isinstance(app.form, EditXmlScreen) and app.screen is app.form)
    screen = app.form
    assert isinstance(screen, EditXmlScreen)
    await until(pilot, lambda: screen.original is not None)
    still(screen)
    return screen


def test_edit_xml(snap_compare: SnapCompare) -> None:
    """The editor on a running domain: the next-boot note on top, the XML with line
    numbers, the cursor at the start, and Open in $EDITOR / Save / Cancel."""

    async def run_before(pilot: Pilot[None]) -> None:
        await editor_ready(pilot)

    assert snap_compare(edit_app(), terminal_size=SIZE, run_before=run_before)


def test_edit_xml_diff(snap_compare: SnapCompare) -> None:
    """The diff to confirm: vCPUs 2 → 3 and a new title; removed lines in the error colour,
    added lines in the success colour, the next-boot note, Back and Save (focused)."""

    async def run_before(pilot: Pilot[None]) -> None:
        screen = await editor_ready(pilot)
        screen.editor.text = screen.editor.text.replace("<vcpu>2</vcpu>", "<vcpu>3</vcpu>").replace(
            "<name>snap</name>", "<name>snap</name>\n  <title>Snapshot test</title>"
        )
        await pilot.press("ctrl+s")
        app: Any = pilot.app
        await until(pilot, lambda: isinstance(app.screen, XmlDiffScreen))

    assert snap_compare(edit_app(), terminal_size=SIZE, run_before=run_before)
