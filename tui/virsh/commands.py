"""The verbs: what each one asks the connection and what it prints, in virsh's words.

Messages that name a domain use the name the user typed where virsh does (``destroy 3``
prints ``Domain '3' destroyed``) and the domain's own name where virsh does (``start``,
``define``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from drivers.errors import InvalidArgument, OperationFailed
from drivers.model import DomainState, DomainSummary, state_words
from drivers.records import record
from tui.text import inert_xml
from tui.virsh.formats import cpu_seconds, field, info_line, table
from tui.virsh.options import (
    MAX_DEFINE_BYTES,
    Args,
    Command,
    Group,
    Handler,
    Opt,
    all_help,
    command_help,
    group_help,
)
from tui.virsh.shell import Shell

DOMAIN = Opt("domain", "string", "domain name, id or uuid", positional=True, required=True)


# --- listing ----------------------------------------------------------------------------


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _sort_key(summary: DomainSummary) -> tuple[int, int, str]:
    # virsh's order: running domains by id, then the inactive ones by name, ignoring case.
    if summary.id is not None:
        return (0, summary.id, "")
    return (1, 0, _ascii_lower(summary.name))


def _wanted(args: Args) -> Callable[[DomainSummary], bool]:
    """libvirt's list filters, with virsh's defaults (active only, unless asked otherwise)."""
    inactive = args.flag("inactive") or args.flag("state-shutoff")
    active = not inactive
    if args.flag("all"):
        active = inactive = True
    persistent, transient = args.flag("persistent"), args.flag("transient")
    states = {
        DomainState.RUNNING: args.flag("state-running"),
        DomainState.PAUSED: args.flag("state-paused"),
        DomainState.SHUTOFF: args.flag("state-shutoff"),
    }
    other = args.flag("state-other")
    by_state = any(states.values()) or other

    def wanted(summary: DomainSummary) -> bool:
        if not (active if summary.state.is_active else inactive):
            return False
        if (persistent or transient) and not (
            (persistent and summary.persistent) or (transient and not summary.persistent)
        ):
            return False
        if by_state:
            return states.get(summary.state, other)
        return True

    return wanted


async def cmd_list(shell: Shell, args: Args) -> bool:
    for plain in ("name", "uuid", "id"):
        args.exclusive("table", plain)
    conn = await shell.connection()
    wanted = _wanted(args)
    chosen = sorted((s for s in await conn.list_summaries() if wanted(s)), key=_sort_key)
    if args.flag("name") or args.flag("uuid") or args.flag("id"):
        for summary in chosen:
            parts = []
            if args.flag("uuid"):
                parts.append(summary.uuid)
            if args.flag("id"):
                if summary.id is None and not (args.flag("uuid") or args.flag("name")):
                    continue  # virsh: ids alone are listed for running domains only
                parts.append("-" if summary.id is None else str(summary.id))
            if args.flag("name"):
                parts.append(field(summary.name))
            shell.print(" ".join(parts) + "\n")
        return True
    header = ["Id", "Name", "State"]
    rows = []
    for summary in chosen:
        row = ["-" if summary.id is None else str(summary.id), summary.name, summary.state.words]
        rows.append([*row, summary.title] if args.flag("title") else row)
    if args.flag("title"):
        header.append("Title")
    shell.print(table(header, rows, with_header=not shell.quiet))
    return True


# --- one domain: information --------------------------------------------------------------


async def cmd_domstate(shell: Shell, args: Args) -> bool:
    state, reason = await (await shell.domain(args.required("domain"))).state()
    shell.print((state_words(state, reason) if args.flag("reason") else state.words) + "\n")
    return True


def _os_type(xml: str) -> str | None:
    # xml.etree is enough for reading one element of the driver's own output, and keeps
    # lxml out of the CLI.
    from xml.etree import ElementTree

    node = ElementTree.fromstring(xml).find("os/type")
    return None if node is None or node.text is None else node.text.strip()


async def cmd_dominfo(shell: Shell, args: Args) -> bool:
    dom = await shell.domain(args.required("domain"))
    domid = await dom.id()
    info = await dom.info()
    summary = await shell.summary(dom)
    os_type = _os_type(await dom.xml())
    text = info_line("Id:", "-" if domid is None else str(domid))
    text += info_line("Name:", field(dom.name))
    text += info_line("UUID:", dom.uuid)
    if os_type is not None:
        text += info_line("OS Type:", field(os_type))
    text += info_line("State:", info.state.words)
    text += info_line("CPU(s):", str(info.vcpus))
    if info.cpu_time_ns:
        text += info_line("CPU time:", cpu_seconds(info.cpu_time_ns))
    text += info_line("Max memory:", f"{info.max_memory_kib} KiB")
    text += info_line("Used memory:", f"{info.memory_kib} KiB")
    persistent = "unknown" if summary is None else ("yes" if summary.persistent else "no")
    text += info_line("Persistent:", persistent)
    # virtdeck has no autostart and no managed save, so the answers are known.
    text += info_line("Autostart:", "disable")
    text += info_line("Managed save:", "no")
    shell.print(text)
    return True


async def cmd_dumpxml(shell: Shell, args: Args) -> bool:
    dom = await shell.domain(args.required("domain"))
    shell.print(inert_xml(await dom.xml(inactive=args.flag("inactive"))))
    return True


async def cmd_domid(shell: Shell, args: Args) -> bool:
    dom = await shell.domain(args.required("domain"), by_id=False)
    domid = await dom.id()
    shell.print(("-" if domid is None else str(domid)) + "\n")
    return True


async def cmd_domuuid(shell: Shell, args: Args) -> bool:
    dom = await shell.domain(args.required("domain"), by_uuid=False)
    shell.print(dom.uuid + "\n")
    return True


async def cmd_domname(shell: Shell, args: Args) -> bool:
    dom = await shell.domain(args.required("domain"), by_name=False)
    shell.print(field(dom.name) + "\n")
    return True


# --- one domain: actions ------------------------------------------------------------------


async def cmd_define(shell: Shell, args: Args) -> bool:
    path = args.required("file")
    try:
        with open(path, "rb") as handle:
            # bounded: /dev/zero, or a huge file by mistake, must not eat the memory
            raw = handle.read(MAX_DEFINE_BYTES + 1)
    except OSError as err:
        raise OperationFailed(f"Cannot read '{path}': {err.strerror}.") from err
    if len(raw) > MAX_DEFINE_BYTES:
        raise InvalidArgument(
            f"'{path}' is larger than {MAX_DEFINE_BYTES >> 20} MiB, the most a domain XML may "
            "be; real definitions are a few kilobytes. Check the file name."
        )
    try:
        xml = raw.decode()
    except UnicodeDecodeError:
        raise InvalidArgument(f"'{path}' is not UTF-8 text.") from None
    conn = await shell.connection()
    dom = await conn.define_xml(xml)
    shell.extra(f"Domain '{field(dom.name)}' defined from {field(path)}\n")
    return True


async def cmd_undefine(shell: Shell, args: Args) -> bool:
    ref = args.required("domain")
    await (await shell.domain(ref)).undefine()
    shell.extra(f"Domain '{field(ref)}' has been undefined\n")
    return True


async def cmd_start(shell: Shell, args: Args) -> bool:
    # virsh looks inactive domains up by name or UUID only: they have no id.
    dom = await shell.domain(args.required("domain"), by_id=False)
    await dom.start(paused=args.flag("paused"))
    shell.extra(f"Domain '{field(dom.name)}' started\n")
    return True


def _lifecycle(method: str, done: str) -> Callable[[Shell, Args], Awaitable[bool]]:
    """A verb that calls one domain method and says so as virsh does (with the name typed)."""

    async def command(shell: Shell, args: Args) -> bool:
        ref = args.required("domain")
        await getattr(await shell.domain(ref), method)()
        shell.extra(f"Domain '{field(ref)}' {done}\n")
        return True

    return command


cmd_reboot = _lifecycle("reboot", "is being rebooted")
cmd_reset = _lifecycle("reset", "was reset")
cmd_suspend = _lifecycle("suspend", "suspended")
cmd_resume = _lifecycle("resume", "resumed")
cmd_destroy = _lifecycle("destroy", "destroyed")


# --- the host -----------------------------------------------------------------------------


async def cmd_uri(shell: Shell, args: Args) -> bool:
    shell.print((await shell.connection()).uri + "\n")
    return True


async def cmd_hostname(shell: Shell, args: Args) -> bool:
    host = await (await shell.connection()).host_info()
    shell.print(field(host.hostname) + "\n")
    return True


def _library_version(fallback: str) -> str:
    from importlib import metadata

    try:
        return metadata.version("virtdeck")
    except metadata.PackageNotFoundError:
        return fallback  # a source checkout: the driver code in use is this library


async def cmd_version(shell: Shell, args: Args) -> bool:
    host = await (await shell.connection()).host_info()
    library = _library_version(host.driver_version)
    hypervisor = field(host.hypervisor)
    shell.print(
        f"Compiled against library: virtdeck {library}\n"
        f"Using library: virtdeck {library}\n"
        f"Using API: {hypervisor} {field(host.driver_version)}\n"
        f"Running hypervisor: {hypervisor} {field(host.hypervisor_version)}\n"
    )
    return True


async def cmd_help(shell: Shell, args: Args) -> bool:
    name = args.text("command")
    if name is None:
        shell.print(all_help(groups()))
        return True
    command = find(name)
    if command is not None:
        shell.print(command_help(command))
        return True
    for group in groups():
        if name in (group.name, group.keyword):
            shell.print(group_help(group))
            return True
    raise InvalidArgument(f"command or command group '{name}' doesn't exist")


# --- the table ----------------------------------------------------------------------------


def _verb(name: str, summary: str, desc: str, handler: Handler) -> Command:
    return Command(name, summary, desc, (DOMAIN,), handler)


@record
class _Elsewhere:
    """A verb defined in a module of its own (console, logs, domstats, event, migrate,
    domjob*, domifaddr, shutdown, screenshot, send-key), loaded when it runs or help lists
    it: a one-shot ``list`` or ``start`` then does without those modules (~1 ms of its
    start-up)."""

    name: str
    module: str
    attr: str

    def load(self) -> Command:
        command = getattr(__import__(self.module, fromlist=[self.attr]), self.attr)
        assert isinstance(command, Command) and command.name == self.name
        return command


@record
class _Group:
    """A help group as the table declares it, before its verbs are loaded."""

    name: str
    keyword: str
    commands: tuple[Command | _Elsewhere, ...]


LIST = Command(
    "list",
    "list domains",
    "Returns list of domains.",
    (
        Opt("inactive", "bool", "list inactive domains"),
        Opt("all", "bool", "list inactive & active domains"),
        Opt("transient", "bool", "list transient domains"),
        Opt("persistent", "bool", "list persistent domains"),
        Opt("state-running", "bool", "list domains in running state"),
        Opt("state-paused", "bool", "list domains in paused state"),
        Opt("state-shutoff", "bool", "list domains in shutoff state"),
        Opt("state-other", "bool", "list domains in other states"),
        Opt("uuid", "bool", "list uuid's only"),
        Opt("name", "bool", "list domain names only"),
        Opt("id", "bool", "list domain IDs only"),
        Opt("table", "bool", "list table (default)"),
        Opt("title", "bool", "show domain title"),
    ),
    cmd_list,
)

_DOMAIN_MANAGEMENT = _Group(
    "Domain Management",
    "domain",
    (
        _Elsewhere("console", "tui.virsh.console", "CONSOLE"),
        Command(
            "define",
            "define (but don't start) a domain from an XML file",
            "Define a domain.",
            (
                Opt(
                    "file",
                    "string",
                    "file containing an XML domain description",
                    positional=True,
                    required=True,
                ),
            ),
            cmd_define,
        ),
        _verb("destroy", "destroy (stop) a domain", "Forcefully stop a given domain.", cmd_destroy),
        _Elsewhere("domjobabort", "tui.virsh.migrate", "DOMJOBABORT"),
        _verb("domid", "convert a domain name or UUID to domain id", "", cmd_domid),
        _verb("domname", "convert a domain id or UUID to domain name", "", cmd_domname),
        _verb("domuuid", "convert a domain name or id to domain UUID", "", cmd_domuuid),
        Command(
            "dumpxml",
            "domain information in XML",
            "Output the domain information as an XML dump to stdout.",
            (DOMAIN, Opt("inactive", "bool", "show inactive defined XML")),
            cmd_dumpxml,
        ),
        _Elsewhere("migrate", "tui.virsh.migrate", "MIGRATE"),
        _verb(
            "reboot", "reboot a domain", "Run a reboot command in the target domain.", cmd_reboot
        ),
        _verb(
            "reset", "reset a domain", "Reset the target domain as if by power button", cmd_reset
        ),
        _verb("resume", "resume a domain", "Resume a previously suspended domain.", cmd_resume),
        _Elsewhere("screenshot", "tui.virsh.screen", "SCREENSHOT"),
        _Elsewhere("send-key", "tui.virsh.screen", "SEND_KEY"),
        _Elsewhere("shutdown", "tui.virsh.guest", "SHUTDOWN"),
        Command(
            "start",
            "start a (previously defined) inactive domain",
            "Start a domain via a fresh boot.",
            (
                Opt(
                    "domain",
                    "string",
                    "name of the inactive domain",
                    positional=True,
                    required=True,
                ),
                Opt("paused", "bool", "leave the guest paused after start"),
            ),
            cmd_start,
        ),
        _verb(
            "suspend",
            "suspend a domain",
            "Suspend a running domain.",
            cmd_suspend,
        ),
        _verb(
            "undefine",
            "undefine a domain",
            "Undefine an inactive domain, or convert persistent to transient.",
            cmd_undefine,
        ),
    ),
)

_TABLE = (
    _DOMAIN_MANAGEMENT,
    _Group(
        "Domain Monitoring",
        "monitor",
        (
            _verb(
                "dominfo",
                "domain information",
                "Returns basic information about the domain.",
                cmd_dominfo,
            ),
            _Elsewhere("domifaddr", "tui.virsh.guest", "DOMIFADDR"),
            _Elsewhere("domjobinfo", "tui.virsh.migrate", "DOMJOBINFO"),
            Command(
                "domstate",
                "domain state",
                "Returns state about a domain.",
                (DOMAIN, Opt("reason", "bool", "also print reason for the state")),
                cmd_domstate,
            ),
            _Elsewhere("domstats", "tui.virsh.domstats", "DOMSTATS"),
            LIST,
            _Elsewhere("logs", "tui.virsh.console", "LOGS"),
        ),
    ),
    _Group("Domain Events", "events", (_Elsewhere("event", "tui.virsh.event", "EVENT"),)),
    _Group(
        "Host and Hypervisor",
        "host",
        (
            Command("hostname", "print the hypervisor hostname", "", (), cmd_hostname),
            Command("uri", "print the hypervisor canonical URI", "", (), cmd_uri),
            Command(
                "version",
                "show version",
                "Display the system version information.",
                (),
                cmd_version,
            ),
        ),
    ),
    _Group(
        "virtdeck itself",
        "virtdeck",
        (
            Command(
                "help",
                "print help",
                "Prints global help, command specific help, or help for a\n"
                "    group of related commands",
                (
                    Opt(
                        "command",
                        "string",
                        "Prints global help, command specific help, or help for a group of "
                        "related commands",
                        positional=True,
                    ),
                ),
                cmd_help,
            ),
        ),
    ),
)

_ENTRIES = {entry.name: entry for group in _TABLE for entry in group.commands}


def find(name: str) -> Command | None:
    """The verb ``name`` (its module loaded if it lives in one of its own), or None."""
    entry = _ENTRIES.get(name)
    return entry.load() if isinstance(entry, _Elsewhere) else entry


@functools.cache
def groups() -> tuple[Group, ...]:
    """Every verb, in help's groups and order (loading every command module)."""
    return tuple(
        Group(
            group.name,
            group.keyword,
            tuple(e.load() if isinstance(e, _Elsewhere) else e for e in group.commands),
        )
        for group in _TABLE
    )
