"""Migrations as the TUI runs them: the options of the form, a drain's plan, and a run of
one or more migrations with a limit on how many go at once (this module imports no
Textual).

A :class:`MigrationRun` calls :meth:`drivers.api.Domain.migrate` for each of its jobs,
at most ``parallel`` at a time, and reports every change of a job (its state, the live
figures of :class:`~drivers.model.JobInfo`, its result) through a callback as an immutable
:class:`JobView`. :meth:`MigrationRun.abort` starts no job that has not started and asks
the running ones' sources to cancel (``abort_job``): the driver rolls them back, the
guest going on at its source. Domain states are never set here: the hosts' events bring
them to the table.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from drivers.api import Connection, Domain
from drivers.errors import OperationInvalid, VirtError
from drivers.model import JobInfo
from drivers.records import record, replace

#: How many migrations a drain runs at once unless told otherwise.
DEFAULT_PARALLEL = 2
MAX_PARALLEL = 16


@record
class MigrationOptions:
    """The choices of the migrate form (and of a drain, for every domain)."""

    live: bool = True
    persistent: bool = True
    undefine_source: bool = False
    copy_storage: bool = False
    tunnelled: bool = False
    bandwidth_mib: int | None = None
    """None: unlimited."""


def parse_bandwidth(text: str) -> tuple[int | None, str]:
    """The bandwidth typed in the form (MiB/s; empty is unlimited), and the error if any."""
    text = text.strip()
    if not text:
        return None, ""
    try:
        value = int(text)
    except ValueError:
        return None, f"'{text}' is not a whole number; write the MiB/s, or leave it empty."
    if value <= 0:
        return None, "The bandwidth must be at least 1 MiB/s; leave it empty for no limit."
    if value > 1 << 20:
        return None, "The bandwidth is at most 1048576 MiB/s; leave it empty for no limit."
    return value, ""


def parse_parallel(text: str) -> tuple[int | None, str]:
    """How many migrations a drain runs at once, and the error if any."""
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        return None, f"Write how many migrations may run at once (1 to {MAX_PARALLEL})."
    if not 1 <= value <= MAX_PARALLEL:
        return None, f"Between 1 and {MAX_PARALLEL} migrations may run at once."
    return value, ""


_FORM_WORDS = (
    ("migrate with --copy-storage-all", "tick “Copy storage”"),
    ("leave out --copy-storage-all", "untick “Copy storage”"),
    ("--copy-storage-all", "“Copy storage”"),
    ("(--migrateuri tcp:ADDRESS)", "(virtdeck migrate --migrateuri tcp:ADDRESS)"),
    ("migrate with --tunnelled", "tick “Tunnelled”"),
    ("(without --tunnelled)", "(untick “Tunnelled”)"),
)


def form_words(sentence: str) -> str:
    """A driver's sentence with the CLI's options named as the form names them."""
    for cli, form in _FORM_WORDS:
        sentence = sentence.replace(cli, form)
    return sentence


# --- figures ----------------------------------------------------------------------------------


def size(count: float) -> str:
    """Bytes in binary units, three significant figures: ``1.25 GiB``, ``512 MiB``."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift:
            value = count / (1 << shift)
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:.0f} {unit}"
    return f"{int(count)} B"


def rate(per_second: float) -> str:
    return f"{size(per_second)}/s"


def duration(ms: int | float) -> str:
    """``850 ms``, ``1.9 s``, ``2 min 5 s``."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def done_fraction(info: JobInfo) -> float:
    """How far a job is, 0 to 1 (the disks first, when storage is copied)."""
    if info.type == "completed":
        return 1.0
    ram = 1 - info.ram_remaining / info.ram_total if info.ram_total else 0.0
    if info.disk_total:
        disk = info.disk_transferred / info.disk_total
        # the disks are copied before the memory: each gets its share by size
        whole = info.disk_total + info.ram_total
        return (disk * info.disk_total + ram * info.ram_total) / whole
    return max(0.0, min(1.0, ram))


# --- one run of migrations ----------------------------------------------------------------------


class JobState(enum.Enum):
    WAITING = "waiting"
    MIGRATING = "migrating"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Stopped by an abort: never started, or rolled back."""


@record
class JobView:
    """One migration as the screens show it (an immutable snapshot)."""

    index: int
    name: str
    uuid: str
    source: str
    target: str
    state: JobState = JobState.WAITING
    info: JobInfo | None = None
    error: str = ""
    note: str = ""
    """What happened on an abort: 'not started', 'rolled back: …'."""
    elapsed_ms: int | None = None
    """From the call to its return (set at the end)."""

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)

    def words(self) -> str:
        """``waiting``, ``migrating 42 %``, ``done``, ``failed``, ``cancelled``."""
        if self.state is JobState.MIGRATING:
            if self.info is None or not self.info.type or self.info.type == "none":
                return "migrating"
            return f"migrating {100 * done_fraction(self.info):.0f} %"
        return str(self.state.value)


@record
class MigrationJob:
    """What to migrate where: the plan of one domain."""

    name: str
    uuid: str
    source: str
    target: str
    options: MigrationOptions = MigrationOptions()
    paused: bool = False
    """Leave the guest paused at the destination (it is paused at its source)."""


Report = Callable[[JobView], None]
Connect = Callable[[str], Connection]

#: How long an abort keeps asking a source that has not begun sending to cancel.
ABORT_PATIENCE = 30.0


class MigrationRun:
    """Migrate ``jobs``, at most ``parallel`` at once, reporting each change to ``report``.

    ``connect(host)`` gives a host's live connection (raising a VirtError when it is not
    connected); it is asked when a job starts.
    """

    def __init__(
        self,
        jobs: Sequence[MigrationJob],
        *,
        parallel: int,
        connect: Connect,
        report: Report,
        finished: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = tuple(jobs)
        self.on_finished = finished
        self.parallel = max(1, parallel)
        self.connect = connect
        self.report = report
        self.clock = clock
        self.views = [
            JobView(i, job.name, job.uuid, job.source, job.target)
            for i, job in enumerate(self.jobs)
        ]
        self.aborted = False
        self.started: float | None = None
        self.ended: float | None = None
        self.errors: dict[int, VirtError] = {}
        self._running: dict[int, tuple[Domain, asyncio.Task[Domain]]] = {}

    # --- state ------------------------------------------------------------------------

    def _set(self, index: int, **changes: object) -> None:
        view = replace(self.views[index], **changes)
        self.views[index] = view
        self.report(view)

    def counts(self) -> dict[JobState, int]:
        found = {state: 0 for state in JobState}
        for view in self.views:
            found[view.state] += 1
        return found

    @property
    def finished(self) -> bool:
        return self.ended is not None

    def summary(self) -> str:
        """One line: how many moved, failed, were cancelled; how long it took."""
        counts = self.counts()
        parts = [f"{counts[JobState.DONE]} of {len(self.views)} migrated"]
        if counts[JobState.FAILED]:
            parts.append(f"{counts[JobState.FAILED]} failed")
        if counts[JobState.CANCELLED]:
            parts.append(f"{counts[JobState.CANCELLED]} cancelled")
        waiting = counts[JobState.WAITING] + counts[JobState.MIGRATING]
        if waiting:
            parts.append(f"{waiting} to go")
        if self.started is not None:
            end = self.ended if self.ended is not None else self.clock()
            parts.append(f"{duration(1000 * (end - self.started))}")
        return ", ".join(parts)

    # --- running ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run every job (or until aborted); returns when none is left running."""
        self.started = self.clock()
        gate = asyncio.Semaphore(self.parallel)

        async def one(index: int) -> None:
            async with gate:
                if self.aborted:
                    self._set(index, state=JobState.CANCELLED, note="not started")
                    return
                await self._migrate(index)

        try:
            await asyncio.gather(*(one(i) for i in range(len(self.jobs))))
        finally:
            self.ended = self.clock()
            if self.on_finished is not None:
                self.on_finished()

    async def _migrate(self, index: int) -> None:
        job = self.jobs[index]
        began = self.clock()
        self._set(index, state=JobState.MIGRATING)

        def progress(info: JobInfo) -> None:
            if self.views[index].state is JobState.MIGRATING:
                self._set(index, info=info)

        try:
            source = self.connect(job.source)
            target = self.connect(job.target)
            dom = await source.lookup_by_uuid(job.uuid)
            opts = job.options
            task = asyncio.ensure_future(
                dom.migrate(
                    target,
                    live=opts.live,
                    persistent=opts.persistent,
                    undefine_source=opts.undefine_source,
                    copy_storage="all" if opts.copy_storage else None,
                    bandwidth_mib=opts.bandwidth_mib,
                    tunnelled=opts.tunnelled,
                    paused=job.paused,
                    progress=progress,
                )
            )
            self._running[index] = (dom, task)
            await task
        except VirtError as err:
            elapsed = int(1000 * (self.clock() - began))
            self.errors[index] = err
            if self.aborted:
                self._set(
                    index,
                    state=JobState.CANCELLED,
                    error=err.message,
                    note=f"rolled back: it goes on at {job.source}",
                    elapsed_ms=elapsed,
                )
            else:
                self._set(index, state=JobState.FAILED, error=err.message, elapsed_ms=elapsed)
            return
        finally:
            self._running.pop(index, None)
        note = "finished before the abort" if self.aborted else ""
        elapsed = int(1000 * (self.clock() - began))
        self._set(index, state=JobState.DONE, note=note, elapsed_ms=elapsed)

    async def abort(self) -> None:
        """Start nothing more; cancel what runs (the sources roll back)."""
        self.aborted = True
        for index, view in enumerate(self.views):
            if view.state is JobState.WAITING:
                self._set(index, state=JobState.CANCELLED, note="not started")
        running = list(self._running.values())
        results = await asyncio.gather(
            *(self._abort_one(dom, task) for dom, task in running), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, VirtError):
                raise result
        errors = [r for r in results if isinstance(r, VirtError)]
        if errors:
            raise errors[0]

    async def _abort_one(self, dom: Domain, task: asyncio.Task[Domain]) -> None:
        """Ask the source to cancel; until the job has begun sending, ask again."""
        deadline = self.clock() + ABORT_PATIENCE
        while not task.done():
            try:
                await dom.abort_job()
                return
            except OperationInvalid:
                # not sending yet (Begin, Prepare) or no longer (Finish, Confirm)
                if self.clock() > deadline:
                    raise
            await asyncio.wait({task}, timeout=0.05)


# --- a drain's plan -------------------------------------------------------------------------------


@record
class Candidate:
    """A domain to move off a host, and where it could go."""

    name: str
    uuid: str
    memory_bytes: int
    reasons: Mapping[str, tuple[str, ...]]
    """Per target host, why the domain could not go there (pre-flight); () where it can."""


def suggest_targets(candidates: Iterable[Candidate], free: Mapping[str, int]) -> dict[str, str]:
    """A target for each domain that has one: the host with the most memory left that
    passed its pre-flight, biggest domains first, each placement taking its memory from
    that host (so no target is overfilled). Domains no host can take are left out."""
    left = dict(free)
    chosen: dict[str, str] = {}
    ordered = sorted(candidates, key=lambda c: (-c.memory_bytes, c.name))
    for cand in ordered:
        fits = [
            host
            for host, room in left.items()
            if not _blocking(cand.reasons.get(host, ("not checked",))) and room >= cand.memory_bytes
        ]
        if not fits:
            continue
        best = max(fits, key=lambda h: (left[h], h))
        chosen[cand.uuid] = best
        left[best] -= cand.memory_bytes
    return chosen


def _blocking(reasons: tuple[str, ...]) -> bool:
    """Reasons other than memory (memory is counted by the plan itself)."""
    return any(not is_memory_reason(r) for r in reasons)


def is_memory_reason(reason: str) -> bool:
    return "of memory; the destination has" in reason


__all__ = [
    "DEFAULT_PARALLEL",
    "Candidate",
    "JobState",
    "JobView",
    "MigrationJob",
    "MigrationOptions",
    "MigrationRun",
    "done_fraction",
    "form_words",
    "parse_bandwidth",
    "parse_parallel",
    "suggest_targets",
]
