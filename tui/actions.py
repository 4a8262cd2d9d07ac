"""The domain actions: one table that keys, buttons, the palette and help all read.

Each :class:`DomainAction` says which states it is valid in, how dangerous it is (which
confirmation it needs) and which :class:`~drivers.api.Domain` method it calls. Whether an
action is offered for a row also depends on the host: read-only and lost hosts offer none.
This module imports no Textual.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from drivers.errors import VirtError
from drivers.model import DomainState
from drivers.records import record
from tui.config import HostMode
from tui.state import DomainRow

ACTIVE = frozenset(s for s in DomainState if s.is_active)


class Danger(enum.Enum):
    NONE = "none"  # just do it
    YES_NO = "yes-no"  # a yes/no question
    TYPED = "typed"  # type the domain's name


@record
class DomainAction:
    name: str
    """The action name (``action_<name>`` on the main screen)."""
    key: str
    title: str
    description: str
    tooltip: str
    progress: str
    past: str
    states: frozenset[DomainState]
    method: str = ""
    danger: Danger = Danger.NONE
    protected: bool = False
    """On a protected host, the host's name must be typed to confirm."""
    show: bool = True
    by_state: tuple[tuple[DomainState, str], ...] = ()
    """Another method for rows in these states (pause: resume a paused domain)."""
    persistent_only: bool = False
    """Not for transient domains (undefine)."""
    form: bool = False
    """The action opens a form for the cursor's domain (migrate) instead of calling
    ``method`` on each target."""

    @property
    def binding_id(self) -> str:
        return f"domain.{self.name}"

    def method_for(self, row: DomainRow) -> str | None:
        """The Domain method to call for ``row``, or None when the action is not valid for it."""
        if row.state not in self.states or (self.persistent_only and not row.persistent):
            return None
        for state, method in self.by_state:
            if state is row.state:
                return method
        return self.method


ACTIONS: tuple[DomainAction, ...] = (
    DomainAction(
        "start",
        "s",
        "Start",
        "Start",
        "Boot the selected (or marked) shut-off domains",
        "starting",
        "started",
        frozenset({DomainState.SHUTOFF}),
        "start",
    ),
    DomainAction(
        "shutdown",
        "S",
        "Shut down",
        "Shutdown",
        "Ask the guests to power off (ACPI power button)",
        "shutting down",
        "asked to shut down",
        frozenset({DomainState.RUNNING}),
        "shutdown",
    ),
    DomainAction(
        "reboot",
        "r",
        "Reboot",
        "Reboot",
        "Ask the guests to reboot (ACPI)",
        "rebooting",
        "asked to reboot",
        frozenset({DomainState.RUNNING}),
        "reboot",
    ),
    DomainAction(
        "pause",
        "p",
        "Pause/resume",
        "Pause/Resume",
        "Pause running domains, resume paused ones",
        "pausing",
        "paused/resumed",
        frozenset({DomainState.RUNNING, DomainState.PAUSED}),
        "suspend",
        by_state=((DomainState.PAUSED, "resume"),),
    ),
    DomainAction(
        "migrate",
        "m",
        "Migrate",
        "Migrate",
        "Move the domain live to another connected host (checked first)",
        "migrating",
        "migrated",
        frozenset({DomainState.RUNNING, DomainState.PAUSED}),
        "migrate",
        form=True,
    ),
    DomainAction(
        "reset",
        "R",
        "Reset",
        "Reset",
        "Reset the virtual hardware at once (asks first)",
        "resetting",
        "reset",
        ACTIVE,
        "reset",
        Danger.YES_NO,
        protected=True,
        show=False,
    ),
    DomainAction(
        "destroy",
        "D",
        "Destroy",
        "Destroy",
        "Stop at once, like pulling the plug (asks first)",
        "destroying",
        "destroyed",
        ACTIVE,
        "destroy",
        Danger.YES_NO,
        protected=True,
    ),
    DomainAction(
        "undefine",
        "U",
        "Undefine",
        "Undefine",
        "Remove the definition (type the name to confirm)",
        "undefining",
        "undefined",
        frozenset(DomainState),
        "undefine",
        Danger.TYPED,
        protected=True,
        show=False,
        persistent_only=True,
    ),
)
ACTIONS_BY_NAME = {a.name: a for a in ACTIONS}


@record
class Plan:
    """What an action will do to a set of rows: the calls, and the rows it skips and why."""

    action: DomainAction
    calls: tuple[tuple[DomainRow, str], ...]
    skipped: tuple[tuple[DomainRow, str], ...]
    protected_hosts: tuple[str, ...] = ()
    """Protected hosts among the calls' rows (their names must be typed to confirm)."""
    delete_images: bool = False
    """With undefine: also delete the disk images the domain owns in its host's pool."""


def plan(
    action: DomainAction, rows: Sequence[DomainRow], modes: dict[str, HostMode], lost: set[str]
) -> Plan:
    """Split ``rows`` into those the action applies to and those it skips (with a reason)."""
    calls: list[tuple[DomainRow, str]] = []
    skipped: list[tuple[DomainRow, str]] = []
    for row in rows:
        mode = modes.get(row.host, HostMode.NORMAL)
        method = action.method_for(row)
        if row.host in lost:
            skipped.append((row, f"host {row.host} is not connected"))
        elif mode is HostMode.READ_ONLY:
            skipped.append((row, f"host {row.host} is read-only"))
        elif method is None:
            skipped.append((row, f"it is {row.words}"))
        else:
            calls.append((row, method))
    protected = sorted({row.host for row, _ in calls if modes.get(row.host) is HostMode.PROTECTED})
    return Plan(action, tuple(calls), tuple(skipped), tuple(protected) if action.protected else ())


class ActionFailed(VirtError):
    """Some domains of a bulk action failed; the message lists each with its reason."""

    title = "Action failed"

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title


@record
class ActionReport:
    """What a (bulk) action did: the domains it worked on and those that failed, with why."""

    action: DomainAction
    done: tuple[str, ...]
    failed: tuple[tuple[str, VirtError], ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def total(self) -> int:
        return len(self.done) + len(self.failed)

    def summary(self) -> tuple[str, str]:
        """(title, message) for one notification."""
        verb = self.action.title
        if self.failed:
            title = f"{verb}: {len(self.failed)} of {self.total} failed"
        else:
            title = f"{verb}: {len(self.done)} domain{'s' if len(self.done) != 1 else ''}"
        lines: list[str] = []
        if self.done:
            lines.append(f"{self.action.past.capitalize()}: {', '.join(self.done)}")
        for name, err in self.failed:
            lines.append(f"{name}: {err.message}")
        for name, why in self.skipped:
            lines.append(f"{name}: skipped, {why}")
        return title, "\n".join(lines)

    def error(self) -> ActionFailed:
        title, message = self.summary()
        return ActionFailed(title, message)
