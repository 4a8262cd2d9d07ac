"""``migrate``, ``domjobinfo`` and ``domjobabort``, as virsh has them.

``virtdeck migrate [--live] ... DOMAIN DESTURI`` opens the destination itself and drives
the five phases from this process (drivers.migration), like virsh's default client-managed
migration. As in virsh, a migration without ``--live`` pauses the guest for the copy.
"""

from __future__ import annotations

from drivers.errors import InvalidArgument, OperationFailed
from drivers.model import JobInfo
from tui.virsh.options import MAX_DEFINE_BYTES, Args, Command, Opt, is_uint
from tui.virsh.shell import Shell

_MIB = 1 << 20


def _number(args: Args, name: str) -> int | None:
    text = args.text(name)
    if text is None:
        return None
    if not is_uint(text) or int(text) <= 0:
        raise InvalidArgument(
            f"Numeric value '{text}' for <{name}> option is malformed or out of range"
        )
    return int(text)


def _read_xml(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(MAX_DEFINE_BYTES + 1)  # bounded, like define's
    except OSError as err:
        raise OperationFailed(f"Cannot read '{path}': {err.strerror}.") from err
    except UnicodeDecodeError:
        raise InvalidArgument(f"'{path}' is not UTF-8 text.") from None
    if len(text) > MAX_DEFINE_BYTES:
        raise InvalidArgument(f"'{path}' is larger than a domain XML may be (4 MiB).")
    return text


def progress_line(info: JobInfo) -> str:
    """virsh's ``--verbose`` line: ``Migration: [ 42 %]``."""
    if info.disk_total and info.status == "mirroring":
        done = info.disk_transferred / info.disk_total
    elif info.type == "completed" or info.status == "completed":
        done = 1.0
    elif info.ram_total:
        done = 1 - info.ram_remaining / info.ram_total
    else:
        done = 0.0
    return f"Migration: [{int(100 * done):3d} %]"


async def cmd_migrate(shell: Shell, args: Args) -> bool:
    import drivers

    args.exclusive("live", "offline")
    dom = await shell.domain(args.required("domain"))
    desturi = args.required("desturi")
    bandwidth = _number(args, "bandwidth")
    timeout = _number(args, "timeout")
    if timeout is not None and not args.flag("live"):
        raise InvalidArgument("migrate: Unexpected --timeout without --live.")
    xml_path = args.text("xml")
    xml = _read_xml(xml_path) if xml_path is not None else None
    verbose = args.flag("verbose")

    def report(info: JobInfo) -> None:
        shell.err.write(f"\r{progress_line(info)}")
        shell.err.flush()

    dest = await drivers.open(desturi)
    try:
        await dom.migrate(
            dest,
            live=args.flag("live"),
            persistent=args.flag("persistent"),
            undefine_source=args.flag("undefinesource"),
            copy_storage="all" if args.flag("copy-storage-all") else None,
            bandwidth_mib=bandwidth,
            migrate_uri=args.text("migrateuri"),
            tunnelled=args.flag("tunnelled"),
            offline=args.flag("offline"),
            paused=args.flag("suspend"),
            xml=xml,
            timeout_s=None if timeout is None else float(timeout),
            progress=report if verbose else None,
        )
    except drivers.VirtError:
        if verbose:
            shell.err.write("\n")
        raise
    finally:
        await dest.close()
    if verbose:
        shell.err.write("\n")
    return True


def _mib(value: int) -> str:
    return f"{value / _MIB:.3f} MiB"


def jobinfo_lines(info: JobInfo) -> str:
    """What ``virsh domjobinfo`` prints (labels padded to 17 columns)."""
    rows: list[tuple[str, str]] = [("Job type:", info.type.capitalize())]
    if info.type == "none":
        return "".join(f"{label:<17} {value}\n" for label, value in rows)
    rows.append(("Operation:", info.operation.capitalize()))
    rows.append(("Time elapsed:", f"{info.elapsed_ms:<12} ms"))
    disk_done = info.disk_transferred
    rows += [
        ("Data processed:", _mib(info.ram_transferred + disk_done)),
        ("Data remaining:", _mib(info.ram_remaining + info.disk_remaining)),
        ("Data total:", _mib(info.ram_total + info.disk_total)),
        ("Memory processed:", _mib(info.ram_transferred)),
        ("Memory remaining:", _mib(info.ram_remaining)),
        ("Memory total:", _mib(info.ram_total)),
        ("Memory bandwidth:", f"{info.ram_rate / _MIB:.3f} MiB/s"),
        ("Dirty rate:", f"{info.dirty_rate:<12} pages/s"),
        ("Page size:", f"{info.page_size:<12} bytes"),
        ("Iteration:", str(info.iterations)),
    ]
    if info.disk_total:
        rows += [
            ("File processed:", _mib(info.disk_transferred)),
            ("File remaining:", _mib(info.disk_remaining)),
            ("File total:", _mib(info.disk_total)),
        ]
    if info.expected_downtime_ms is not None and info.active:
        rows.append(("Expected downtime:", f"{info.expected_downtime_ms:<12} ms"))
    if info.downtime_ms is not None:
        rows.append(("Total downtime:", f"{info.downtime_ms:<12} ms"))
    if info.setup_ms is not None:
        rows.append(("Setup time:", f"{info.setup_ms:<12} ms"))
    if info.error:
        rows.append(("Error:", info.error))
    return "".join(f"{label:<17} {value}\n" for label, value in rows)


async def cmd_domjobinfo(shell: Shell, args: Args) -> bool:
    info = await (await shell.domain(args.required("domain"))).job_info()
    shell.print(jobinfo_lines(info))
    return True


async def cmd_domjobabort(shell: Shell, args: Args) -> bool:
    await (await shell.domain(args.required("domain"))).abort_job()
    return True


DOMAIN = Opt("domain", "string", "domain name, id or uuid", positional=True, required=True)

MIGRATE = Command(
    "migrate",
    "migrate domain to another host",
    "Migrate domain to another host.  Add --live for live migration.",
    (
        Opt("live", "bool", "live migration"),
        Opt("offline", "bool", "offline migration"),
        Opt("tunnelled", "bool", "tunnelled migration (through this client)"),
        Opt("persistent", "bool", "persist VM on destination"),
        Opt("undefinesource", "bool", "undefine VM on source"),
        Opt("suspend", "bool", "do not restart the domain on the destination host"),
        Opt("copy-storage-all", "bool", "migration with non-shared storage with full disk copy"),
        Opt("verbose", "bool", "display the progress of migration"),
        DOMAIN,
        Opt(
            "desturi",
            "string",
            "connection URI of the destination host",
            positional=True,
            required=True,
        ),
        Opt("migrateuri", "string", "migration URI, usually can be omitted"),
        Opt("xml", "string", "filename containing updated XML for the target"),
        Opt(
            "timeout",
            "number",
            "suspend the guest if live migration exceeds timeout (in seconds)",
        ),
        Opt("bandwidth", "number", "migration bandwidth limit in MiB/s"),
    ),
    cmd_migrate,
)

DOMJOBINFO = Command(
    "domjobinfo",
    "domain job information",
    "Returns information about jobs running on a domain.",
    (DOMAIN,),
    cmd_domjobinfo,
)

DOMJOBABORT = Command(
    "domjobabort",
    "abort active domain job",
    "Aborts the currently running domain job",
    (DOMAIN,),
    cmd_domjobabort,
)

__all__ = ["DOMJOBABORT", "DOMJOBINFO", "MIGRATE", "jobinfo_lines", "progress_line"]
