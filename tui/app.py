"""The Textual application: hosts, their links, the domain store, and the one place errors show.

Build it with :func:`make_app` (the CLI, the tests and the screenshots all do); run it with
:func:`run`. Every driver call runs in a worker owned by the app, so that
:meth:`VirtdeckApp.on_worker_state_changed` is the single place where failures are shown.
"""

from __future__ import annotations

# isort: off
from tui import loading  # first: no garbage collection while the modules below load

# isort: on
import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from drivers.errors import ConnectionLost, NotSupported, VirtError
from drivers.reconnect import (
    DEFAULT_BACKOFF,
    LinkState,
    LinkStatus,
    Opener,
    Session,
    open_session,
)
from drivers.records import replace
from themes import BUILTIN_THEMES, DEFAULT_THEME, HOST_VARIABLES, load_user_themes
from tui.actions import ActionReport, Plan
from tui.adapter import bounded, open_connection, read_infos, undefine_with_images
from tui.addresses import ADDRESS_INTERVAL, AddressRounds
from tui.config import (
    Config,
    ConfigError,
    HostConfig,
    load_config,
    resolve_hosts,
    save_config,
    themes_dir,
)
from tui.hosts import HostLink, Update, link_uri
from tui.messages import (
    ActionFinished,
    AddressesFound,
    DomainInfos,
    DomainXmlLoaded,
    HostUpdates,
    StatsSampled,
)
from tui.state import Changes, Clock, DomainStore, SystemClock

if TYPE_CHECKING:
    from drivers.api import Connection
    from drivers.model import StatsSample
    from tui.migration import MigrationRun

__all__ = ["VirtdeckApp", "make_app", "run"]


def _virtdeck_commands() -> type[Provider]:
    """The palette's provider, imported when the palette first opens."""
    from tui.commands import VirtdeckCommands

    return VirtdeckCommands


def _console_bindings() -> list[BindingType]:
    from tui.screens.console import ConsoleScreen

    return ConsoleScreen.BINDINGS


def _logs_bindings() -> list[BindingType]:
    from tui.screens.logs import LogsScreen
    from tui.widgets.log_view import LogView

    return [*LogsScreen.BINDINGS, *LogView.BINDINGS]


def _screen_bindings() -> list[BindingType]:
    from tui.screens.screen import ScreenView, SpecialKeys

    return [*ScreenView.BINDINGS, *SpecialKeys.BINDINGS]


#: Screens opened later whose keys the [keymap] may remap, by their ids' first word.
_SCREEN_BINDINGS = {
    "console": _console_bindings,
    "logs": _logs_bindings,
    "screen": _screen_bindings,
    "special_keys": _screen_bindings,
}

HEAD_START_WAIT = 0.05
"""Seconds the app waits for the hosts' first sessions before it draws anything."""
STATS_INTERVAL = 1.0
"""Seconds between two statistics samples of a host."""


class VirtdeckApp(App[None]):
    """virtdeck: every domain of every host in one live table."""

    COMMANDS = App.COMMANDS | {_virtdeck_commands}

    CSS_PATH = "app.tcss"
    TITLE = "virtdeck"
    ENABLE_COMMAND_PALETTE = True
    COMMAND_PALETTE_DISPLAY = ":"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "question_mark",
            "help",
            "Help",
            id="app.help",
            tooltip="List every key and what it does",
        ),
        Binding(
            "colon,ctrl+p",
            "command_palette",
            "Commands",
            id="app.palette",
            show=False,
            tooltip="Search every action: domain actions, hosts, themes",
        ),
        Binding(
            "H", "hosts", "Hosts", id="app.hosts", tooltip="Add, edit, connect and disconnect hosts"
        ),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave virtdeck (guests keep running)"),
    ]

    def __init__(
        self,
        hosts: Sequence[HostConfig],
        *,
        config: Config | None = None,
        theme: str | None = None,
        clock: Clock | None = None,
        opener: Opener | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        user_themes: Path | None = None,
        tick: float | None = 1.0,
        demo: bool = False,
    ) -> None:
        super().__init__()
        self.config = config or Config()
        """The config file's contents, as last loaded or saved."""
        self.initial_hosts = tuple(hosts)
        self.clock: Clock = clock or SystemClock()
        self.store = DomainStore(self.clock)
        self.links: dict[str, HostLink] = {}
        self.opener = opener
        self.backoff = tuple(backoff)
        self.user_themes = user_themes
        self.tick = tick
        self.demo = demo
        self.requested_theme = theme
        self.domains_changed: Signal[Changes] = Signal(self, "domains-changed")
        """Published after every batch the store applied (screens update their widgets)."""
        self.ticked: Signal[float] = Signal(self, "ticked")
        """Once a second: countdowns and uptimes (text only; never domain state)."""
        self.theme_problems: list[str] = []
        self._inbox: dict[tuple[str, int], list[Update]] = {}
        self._delivery: asyncio.TimerHandle | None = None
        self._delivered = 0.0
        self._frozen = False
        self.keymap_applied: dict[str, str] = {}
        """The [keymap] entries in force (binding id → keys)."""
        self._head_start: dict[str, asyncio.Future[Session]] = {}
        """Sessions opened as the event loop started, by host name, until its link starts."""
        self._stats_workers: dict[str, Worker[None]] = {}
        """The statistics subscription of each connected host that offers one."""
        self._address_workers: dict[str, Worker[None]] = {}
        """The IP-address round of each connected host that reports addresses."""
        self._address_wake: dict[str, asyncio.Event] = {}
        """Set to make a host's address round run now (a domain started)."""
        self.address_rounds: dict[str, int] = {}
        """How many address rounds of each host were applied (tests wait on it)."""
        self._register_themes()

    # --- set-up ----------------------------------------------------------------------------

    def _register_themes(self) -> None:
        for theme in BUILTIN_THEMES.values():
            self.register_theme(theme)
        if self.user_themes is not None:
            loaded, failed = load_user_themes(self.user_themes)
            for theme in loaded:
                self.register_theme(theme)
            self.theme_problems = [f.message for f in failed]
        wanted = self.requested_theme or self.config.theme or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.theme_problems.append(
                f"There is no theme called '{wanted}'; using {DEFAULT_THEME}. Themes: "
                + ", ".join(sorted(n for n in self.available_themes if n.startswith("virtdeck")))
                + " and Textual's own."
            )
            wanted = DEFAULT_THEME
        self._set_first_theme(wanted)

    def _set_first_theme(self, name: str) -> None:
        """Start with theme ``name`` without restyling what is not styled yet.

        Assigning ``self.theme`` runs Textual's watcher, which schedules a reparse of every
        stylesheet and a restyle of every widget (~30 ms on our machines) once the app
        runs: right for a switch while running, wasted before the stylesheets are first
        parsed. Here only what the watcher sets that the first parse and paint read: the
        value, the app's theme classes, the colour filter and the CSS variables.
        """
        self.set_reactive(App.theme, name)
        dark = self.current_theme.dark
        classes = {c: False for c in self.classes if c.startswith("-theme-")}
        classes.update({f"-theme-{name}": True, "-dark-mode": dark, "-light-mode": not dark})
        self.update_classes(classes, update=False)
        self._refresh_truecolor_filter(self.ansi_theme)
        self.stylesheet.set_variables(self.get_css_variables())

    async def run_async(self, **kwargs: Any) -> None:
        """Start opening the autoconnected hosts, then run the app.

        Each host's first session (connection, event stream, listing) is opened as the
        event loop starts, before Textual builds the first screen; the host's link takes
        it over. Whatever is not ready after HEAD_START_WAIT goes on while Textual starts.
        """
        opener = self.opener or open_connection
        for host in self.initial_hosts:
            if host.autoconnect and host.name not in self._head_start:
                session = open_session(link_uri(host), opener)
                self._head_start[host.name] = asyncio.ensure_future(session)
        if self._head_start:
            # A local daemon answers within this: the first paint then shows the whole
            # table (no empty-table flash, ~20 ms sooner complete). A slow remote host
            # does not hold the screen back longer than this.
            await asyncio.wait(self._head_start.values(), timeout=HEAD_START_WAIT)
        try:
            return await super().run_async(**kwargs)
        finally:
            await self._drop_head_start()

    async def _drop_head_start(self) -> None:
        """Close the sessions opened ahead that no link took (the app is exiting)."""
        early, self._head_start = self._head_start, {}
        for future in early.values():
            if not future.done():
                future.cancel()  # open_session closes what it opened
            elif not future.cancelled() and future.exception() is None:
                with contextlib.suppress(Exception):
                    await future.result().close()

    def get_default_screen(self) -> Screen[None]:
        from tui.screens.main import MainScreen

        return MainScreen()

    def on_mount(self) -> None:
        for message in self.theme_problems:
            self.notify(message, title="Theme skipped", severity="error", markup=False)
        self._apply_keymap(self.config.keymap)
        for host in self.initial_hosts:
            self._publish(self.store.add_host(host))
            if host.autoconnect:
                self.connect_host(host.name)
        if self.tick:
            self.set_interval(self.tick, self._on_tick, name="countdown")

    def _apply_keymap(self, keymap: dict[str, str] | object) -> None:
        if not isinstance(keymap, dict) or not keymap:
            return
        from tui.screens.main import MainScreen

        known = {b.id for b in self._all_bindings(MainScreen)}
        # The console's and the log's keys too, their modules loaded only when named here.
        groups = {key.partition(".")[0] for key in keymap}
        for group in sorted(groups & set(_SCREEN_BINDINGS)):
            known |= {b.id for b in _SCREEN_BINDINGS[group]() if isinstance(b, Binding)}
        unknown = sorted(set(keymap) - known)
        if unknown:
            self.notify(
                f"The [keymap] names unknown binding ids: {', '.join(unknown)}. "
                "Press ? to see the ids.",
                title="Keymap",
                severity="warning",
                markup=False,
            )
        self.keymap_applied = {k: v for k, v in keymap.items() if k in known}
        self.set_keymap(self.keymap_applied)

    @classmethod
    def _all_bindings(cls, screen: type[Screen[None]]) -> list[Binding]:
        found: list[Binding] = []
        for owner in (cls, screen):
            for item in owner.BINDINGS:
                if isinstance(item, Binding):
                    found.append(item)
        from tui.widgets.domain_table import DomainTable

        found.extend(b for b in DomainTable.BINDINGS if isinstance(b, Binding))
        return found

    @staticmethod
    def clock_now() -> float:
        """Monotonic time for pacing redraws (never for what is shown)."""
        import time

        return time.monotonic()

    def _on_tick(self) -> None:
        self.ticked.publish(self.clock.monotonic())

    # --- hosts -------------------------------------------------------------------------------

    def host_colour(self, name: str) -> str:
        """The colour that marks a host's rows and header: its own, else a theme colour."""
        host = self.store.hosts.get(name)
        if host is not None and host.config.color:
            return host.config.color
        names = list(self.store.hosts)
        index = names.index(name) if name in names else 0
        variables = self.theme_variables
        return variables.get(HOST_VARIABLES[index % len(HOST_VARIABLES)], "")

    def connect_host(self, name: str) -> None:
        """Open (or reopen) a host's link and start relaying its updates."""
        host = self.store.hosts.get(name)
        if host is None or name in self.links:
            return
        link = HostLink(
            host.config,
            opener=self.opener,
            backoff=self.backoff,
            first=self._head_start.pop(name, None),
        )
        self.links[name] = link
        self._publish(self.store.set_link(name, LinkStatus(LinkState.CONNECTING)))
        self._supervise(link)

    async def disconnect_host(self, name: str) -> None:
        self._stop_stats(name)
        self._stop_addresses(name)
        link = self.links.pop(name, None)
        if link is not None:
            await link.close()
        if name in self.store.hosts:
            changes = self.store.clear_host(name)
            changes.merge(self.store.set_link(name, LinkStatus(LinkState.CLOSED, "disconnected")))
            self._publish(changes)

    def retry_host(self, name: str) -> None:
        link = self.links.get(name)
        if link is not None:
            link.link.retry_now()

    #: Link updates are handed to the UI at most this often (seconds) while they stream.
    DELIVERY_INTERVAL = 0.02

    @work(group="hosts", exit_on_error=False, description="host link")
    async def _supervise(self, link: HostLink) -> None:
        name, generation = link.config.name, link.generation
        await link.relay(lambda update: self._collect(name, generation, update))

    def _collect(self, name: str, generation: int, update: Update) -> None:
        """Gather the links' updates, in order per link; one HostUpdates message carries
        what came in a delivery interval."""
        self._inbox.setdefault((name, generation), []).append(update)
        if self._delivery is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._delivered + self.DELIVERY_INTERVAL - loop.time())
        self._delivery = loop.call_later(delay, self._deliver)

    def _deliver(self) -> None:
        self._delivery = None
        self._delivered = asyncio.get_running_loop().time()
        inbox, self._inbox = self._inbox, {}
        if inbox:
            batches = tuple((name, gen, tuple(updates)) for (name, gen), updates in inbox.items())
            self.post_message(HostUpdates(batches))

    def _current(self, name: str, generation: int) -> HostLink | None:
        link = self.links.get(name)
        if link is None or link.generation != generation or link.closing:
            return None
        return link

    def on_host_updates(self, message: HostUpdates) -> None:
        changes = Changes()
        follow: list[tuple[str, int, Changes]] = []
        for host, generation, updates in message.batches:
            if self._current(host, generation) is None:
                continue
            applied = self.store.apply_updates(host, updates)
            changes.merge(applied)
            follow.append((host, generation, applied))
        self._publish(changes)
        for host, generation, applied in follow:
            self._follow_up(host, generation, applied)
            self._wake_addresses(host, applied)
        if not self._frozen and all(
            h.connected_once or not h.config.autoconnect for h in self.store.hosts.values()
        ):
            # Every host has listed its domains: what exists now (Textual's objects, the
            # rows) lives as long as the app. Moving it out of the collector's sight keeps
            # later collections short, so they never stall a key press under an event storm.
            import gc

            gc.freeze()
            self._frozen = True

    def _follow_up(self, host: str, generation: int, changes: Changes) -> None:
        if host in changes.relinked:
            state = self.store.hosts.get(host)
            if state is not None and state.link is LinkState.CONNECTED:
                self._start_stats(host, generation)
                self._start_addresses(host, generation)
        if host in changes.refresh:
            self._refresh(host, generation)
        uuids = changes.infos.get(host)
        if uuids:
            self._read_infos(host, generation, tuple(sorted(uuids)))

    @work(group="refresh", exit_on_error=False, description="relist after an unknown domain")
    async def _refresh(self, host: str, generation: int) -> None:
        link = self._current(host, generation)
        if link is None:
            return
        try:
            await link.link.refresh()
        except ConnectionLost:
            return  # the link is down; its status says so and the reconnect relists

    @work(group="info", exit_on_error=False, description="read vCPUs and memory")
    async def _read_infos(self, host: str, generation: int, uuids: tuple[str, ...]) -> None:
        link = self._current(host, generation)
        if link is None:
            return
        try:
            infos = await read_infos(link.require(), uuids)
        except ConnectionLost:
            return  # the link is down; the snapshot after the reconnect reads them again
        self.post_message(DomainInfos(host, generation, infos))

    def on_domain_infos(self, message: DomainInfos) -> None:
        if self._current(message.host, message.generation) is None:
            return
        self._publish(self.store.apply_infos(message.host, message.infos))

    def _publish(self, changes: Changes) -> None:
        if changes:
            self.domains_changed.publish(changes)

    # --- statistics ----------------------------------------------------------------------------

    def _start_stats(self, host: str, generation: int) -> None:
        """Subscribe to the statistics of ``host``'s new connection (when it offers them)."""
        link = self._current(host, generation)
        conn = None if link is None else link.link.conn
        if conn is None or "stats" not in conn.capabilities:
            return
        self._stop_stats(host)
        self._stats_workers[host] = self._watch_stats(host, generation, conn)

    def _stop_stats(self, host: str) -> None:
        worker = self._stats_workers.pop(host, None)
        if worker is not None:
            worker.cancel()

    @work(group="stats", exit_on_error=False, description="host and domain statistics")
    async def _watch_stats(self, host: str, generation: int, conn: Connection) -> None:
        """One sample a second while the connection lasts (the host samples its domains
        only while someone listens)."""
        try:
            async for sample in conn.stats_stream(STATS_INTERVAL):
                link = self._current(host, generation)
                if link is None or link.link.conn is not conn:
                    return  # the host was disconnected or has reconnected since
                self.post_message(StatsSampled(host, generation, sample))
        except (ConnectionLost, NotSupported):
            return  # the link's status tells of a loss; a host without statistics shows none

    def on_stats_sampled(self, message: StatsSampled) -> None:
        if self._current(message.host, message.generation) is None:
            return
        self.apply_stats(message.host, message.sample)

    def apply_stats(self, host: str, sample: StatsSample) -> None:
        """Take a statistics sample of ``host`` (from its stream, or fixed ones: tui.demo)."""
        self._publish(self.store.apply_stats(host, sample))

    # --- IP addresses ----------------------------------------------------------------------

    def _start_addresses(self, host: str, generation: int) -> None:
        """Ask ``host``'s running domains for their addresses while its connection lasts."""
        link = self._current(host, generation)
        conn = None if link is None else link.link.conn
        if conn is None or "interface-addresses" not in conn.capabilities:
            return
        self._stop_addresses(host)
        self._address_workers[host] = self._watch_addresses(host, generation, conn)

    def _stop_addresses(self, host: str) -> None:
        worker = self._address_workers.pop(host, None)
        if worker is not None:
            worker.cancel()

    def _wake_addresses(self, host: str, changes: Changes) -> None:
        """A domain that runs without a known address (it just started): ask now."""
        wake = self._address_wake.get(host)
        if wake is None or wake.is_set():
            return
        for key in changes.updated | changes.added:
            row = self.store.rows.get(key)
            if row is not None and row.state.is_active and not row.ip:
                wake.set()
                return

    @work(group="addresses", exit_on_error=False, description="domain IP addresses")
    async def _watch_addresses(self, host: str, generation: int, conn: Connection) -> None:
        """One round over the host's running domains, one call at a time (no task per
        domain), every ADDRESS_INTERVAL seconds or when woken."""
        wake = self._address_wake.setdefault(host, asyncio.Event())
        rounds = AddressRounds()
        while True:
            link = self._current(host, generation)
            if link is None or link.link.conn is not conn:
                return
            wake.clear()
            found: dict[str, str] = {}
            running = {
                r.uuid for r in self.store.rows.values() if r.host == host and r.state.is_active
            }
            rounds.keep_only(running)
            for uuid in running:
                try:
                    found[uuid] = await rounds.address(conn, uuid)
                except VirtError:
                    continue
            self.post_message(AddressesFound(host, generation, found))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), ADDRESS_INTERVAL)

    def on_addresses_found(self, message: AddressesFound) -> None:
        if self._current(message.host, message.generation) is None:
            return
        self.address_rounds[message.host] = self.address_rounds.get(message.host, 0) + 1
        self._publish(self.store.apply_addresses(message.host, message.found))

    # --- host editing (the hosts screen) ---------------------------------------------------

    def _save(self, hosts: Iterable[HostConfig]) -> None:
        if self.demo:
            return
        self.config = replace(self.config, hosts=tuple(h for h in hosts if h.saved))
        try:
            save_config(self.config)
        except OSError as err:
            self.notify(
                f"Cannot save {self.config.path}: {err.strerror}.",
                title="Config not saved",
                severity="error",
                markup=False,
            )

    def _config_hosts_with(self, host: HostConfig, old_name: str | None) -> list[HostConfig]:
        hosts = [h for h in self.config.hosts if h.name not in (old_name, host.name)]
        if host.saved:
            hosts.append(host)
        return hosts

    async def add_host(self, host: HostConfig) -> None:
        self._publish(self.store.add_host(host))
        self._save(self._config_hosts_with(host, None))
        if host.autoconnect:
            self.connect_host(host.name)

    async def edit_host(self, old_name: str, host: HostConfig) -> None:
        old = self.store.hosts[old_name].config
        host = replace(host, saved=True)
        reconnect = old.uri != host.uri or old_name != host.name
        if reconnect:
            await self.disconnect_host(old_name)
        self._publish(self.store.update_host_config(old_name, host))
        self._save(self._config_hosts_with(host, old_name))
        if reconnect and host.autoconnect:
            self.connect_host(host.name)

    async def remove_host(self, name: str) -> None:
        await self.disconnect_host(name)
        self._publish(self.store.remove_host(name))
        self._save([h for h in self.config.hosts if h.name != name])

    # --- domain actions ----------------------------------------------------------------------

    @work(group="lifecycle", exit_on_error=False, description="domain action")
    async def perform(self, plan: Plan, reply_to: Screen[None] | None = None) -> ActionReport:
        """Call the plan's method on each domain; the events bring the new states.

        ``reply_to`` gets an :class:`ActionFinished` when every call has returned.
        """
        try:
            return await self._perform(plan)
        finally:
            if reply_to is not None:
                reply_to.post_message(ActionFinished(tuple(row.key for row, _ in plan.calls)))

    async def _perform(self, plan: Plan) -> ActionReport:
        async def one(host: str, uuid: str, method: str) -> None:
            link = self.links.get(host)
            if link is None:
                raise ConnectionLost(f"Host {host} is not connected.")
            conn = link.require()
            dom = await conn.lookup_by_uuid(uuid)
            if method == "undefine" and plan.delete_images:
                await undefine_with_images(conn, dom)
                return
            await getattr(dom, method)()

        results = await bounded(one(row.host, row.uuid, method) for row, method in plan.calls)
        done: list[str] = []
        failed: list[tuple[str, VirtError]] = []
        for (row, _), result in zip(plan.calls, results, strict=True):
            label = f"{row.name} ({row.host})" if len(self.store.hosts) > 1 else row.name
            if isinstance(result, VirtError):
                failed.append((label, result))
            elif isinstance(result, BaseException):
                raise result
            else:
                done.append(label)
        skipped = tuple((row.name, why) for row, why in plan.skipped)
        report = ActionReport(plan.action, tuple(done), tuple(failed), skipped)
        if failed and len(plan.calls) == 1 and not skipped:
            raise failed[0][1]
        if failed:
            raise report.error()
        return report

    @work(group="define", exit_on_error=False, description="define a domain")
    async def define_domain(self, host: str, xml: str, start: bool = False) -> str:
        """Define (or redefine) a domain on ``host`` and optionally start it; its name.

        For the new-domain and edit-XML forms: the row appears (or changes) when the
        Defined event arrives, and its state when Started does, like any other change.
        """
        link = self.links.get(host)
        if link is None:
            raise ConnectionLost(f"Host {host} is not connected.")
        dom = await link.require().define_xml(xml)
        if start:
            await dom.start()
        return dom.name

    @work(group="details", exit_on_error=False, description="read the domain XML")
    async def load_xml(self, host: str, uuid: str, reply_to: Screen[None]) -> None:
        link = self.links.get(host)
        if link is None:
            raise ConnectionLost(f"Host {host} is not connected.")
        dom = await link.require().lookup_by_uuid(uuid)
        xml = await dom.xml()
        from tui.overview import describe

        # parsing (lxml, a full validation) runs on a thread, not on the UI's event loop
        overview = await asyncio.to_thread(describe, xml)
        reply_to.post_message(DomainXmlLoaded(host, uuid, xml, overview))

    # --- migrations ---------------------------------------------------------------------------

    def connection(self, host: str) -> Connection:
        """``host``'s live connection; raises ConnectionLost when it is not connected."""
        link = self.links.get(host)
        if link is None:
            raise ConnectionLost(
                f"Host {host} is not connected; connect it on the hosts screen (H)."
            )
        return link.require()

    def migration_targets(self, host: str) -> dict[str, Connection]:
        """The connected, writable hosts other than ``host`` that can receive migrations
        from it (of its own kind: libvirt or virtdeckd)."""
        from drivers.uri import is_libvirt

        found: dict[str, Connection] = {}
        source = self.store.hosts.get(host)
        libvirt = source is not None and is_libvirt(source.config.uri)
        for name, link in self.links.items():
            state = self.store.hosts.get(name)
            if name == host or state is None or state.lost or not state.config.writable:
                continue
            if is_libvirt(state.config.uri) != libvirt:
                continue  # libvirt hosts migrate only among themselves, virtdeckd's likewise
            try:
                conn = link.require()
            except VirtError:
                continue
            if "migration" in conn.capabilities:
                found[name] = conn
        return found

    def can_drain(self, host: str) -> bool:
        """``host`` is connected, allows changes, can send migrations, and another host
        can receive them."""
        state = self.store.hosts.get(host)
        if state is None or state.lost or not state.config.writable:
            return False
        try:
            source = self.connection(host)
        except VirtError:
            return False
        return "migration" in source.capabilities and bool(self.migration_targets(host))

    def daemon_hosts(self) -> frozenset[str]:
        """The connected hosts reached through a virtdeck daemon (they can tunnel)."""
        from drivers.remote.client import RemoteConnection

        found = set()
        for name, link in self.links.items():
            try:
                if isinstance(link.require(), RemoteConnection):
                    found.add(name)
            except VirtError:
                continue
        return frozenset(found)

    @work(group="migration", exit_on_error=False, description="migrate domains")
    async def run_migrations(self, run: MigrationRun) -> MigrationRun:
        """Run the migrations; the screen that made ``run`` hears of every step. A failure
        shows here like any other (for a drain: one message naming each failure)."""
        from tui.actions import ActionFailed
        from tui.migration import JobState

        await run.run()
        failed = [
            (run.views[i], err)
            for i, err in sorted(run.errors.items())
            if run.views[i].state is JobState.FAILED
        ]
        if failed and len(run.jobs) == 1:
            raise failed[0][1]
        if failed:
            lines = [
                f"{view.name} ({view.source} → {view.target}): {err.message}"
                for view, err in failed
            ]
            raise ActionFailed(
                f"Migration: {len(failed)} of {len(run.jobs)} failed", "\n".join(lines)
            )
        return run

    @work(group="migration-abort", exit_on_error=False, description="cancel migrations")
    async def abort_migrations(self, run: MigrationRun) -> None:
        await run.abort()

    # --- the one place errors (and bulk results) show --------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is WorkerState.ERROR:
            error = worker.error
            if isinstance(error, VirtError):
                self.notify(error.message, title=error.title, severity="error", markup=False)
            elif error is not None:
                self.notify(
                    f"{type(error).__name__}: {error}",
                    title="Unexpected error",
                    severity="error",
                    markup=False,
                )
        elif event.state is WorkerState.SUCCESS and isinstance(worker.result, ActionReport):
            report = worker.result
            if report.total > 1 or report.skipped:
                title, message = report.summary()
                self.notify(message, title=title, markup=False)

    # --- app-level actions -------------------------------------------------------------------

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_hosts(self) -> None:
        from tui.screens.hosts import HostsScreen

        if not isinstance(self.screen, HostsScreen):
            self.push_screen(HostsScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Hosts", "Add, edit, connect and disconnect hosts", self.action_hosts)
        yield SystemCommand("Help", "Every key and what it does", self.action_help)


def make_app(
    uris: Sequence[str] = (),
    *,
    demo: bool = False,
    theme: str | None = None,
    config_file: Path | None = None,
    clock: Clock | None = None,
    opener: Opener | None = None,
    backoff: Sequence[float] = DEFAULT_BACKOFF,
    demo_dir: Path | None = None,
    tick: float | None = 1.0,
) -> VirtdeckApp:
    """The app for ``virtdeck [--demo] [-c URI]... [--theme NAME]``.

    Raises ConfigError when the config file cannot be used.
    """
    config = load_config(config_file)
    demo_hosts: tuple[HostConfig, ...] = ()
    if demo:
        from tui.demo import demo_hosts as make_demo_hosts

        demo_hosts = make_demo_hosts(demo_dir)
    hosts = resolve_hosts(config, uris, demo=demo, demo_hosts=demo_hosts)
    return VirtdeckApp(
        hosts,
        config=config,
        theme=theme,
        clock=clock,
        opener=opener,
        backoff=backoff,
        user_themes=themes_dir() if config_file is None else config_file.parent / "themes",
        tick=tick,
        demo=demo,
    )


def run(uris: Sequence[str] = (), *, demo: bool = False, theme: str | None = None) -> int:
    """Run the TUI until the user quits; the process exit code.

    This is what ``virtdeck`` with no command calls: ``uris`` are the ``-c`` options in
    order, ``demo`` is ``--demo``, ``theme`` is ``--theme``.
    """
    import sys

    try:
        app = make_app(uris, demo=demo, theme=theme)
    except ConfigError as err:
        print(f"virtdeck: {err}", file=sys.stderr)
        return 2
    app.run()
    return app.return_code or 0


def _finish_loading() -> None:
    """Load the first screen with the rest; then the collector may run again."""
    import tui.screens.main  # noqa: F401 - every run shows it

    loading.loaded()


_finish_loading()
