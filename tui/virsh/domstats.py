"""``domstats``: counters of domains in virsh's ``key=value`` layout.

    Domain: 'g1'
      state.state=1
      state.reason=1
      cpu.time=1234567890
      ...

Groups as virsh: ``--state``, ``--cpu-total``, ``--balloon``, ``--vcpu``, ``--interface``,
``--block``; none given means all. Inactive domains show only their state.
"""

from __future__ import annotations

from drivers.model import DomainStats, DomainSummary
from tui.virsh.formats import field
from tui.virsh.options import Args, Command, Opt
from tui.virsh.shell import Shell

GROUPS = ("state", "cpu-total", "balloon", "vcpu", "interface", "block")


def stats_lines(summary: DomainSummary, stats: DomainStats | None, groups: set[str]) -> str:
    out = [f"Domain: '{field(summary.name)}'"]
    if "state" in groups:
        out += [f"  state.state={int(summary.state)}", f"  state.reason={int(summary.reason)}"]
    if stats is not None:
        if "cpu-total" in groups:
            out.append(f"  cpu.time={stats.cpu_time_ns}")
        if "balloon" in groups and stats.balloon_actual_kib is not None:
            out.append(f"  balloon.current={stats.balloon_actual_kib}")
            if summary.memory_kib is not None:
                out.append(f"  balloon.maximum={summary.memory_kib}")
            out.append(f"  balloon.rss={stats.rss_bytes // 1024}")
        if "vcpu" in groups:
            count = len(stats.vcpu_time_ns) or (summary.vcpus or 0)
            out += [f"  vcpu.current={count}", f"  vcpu.maximum={summary.vcpus or count}"]
            for index, ns in enumerate(stats.vcpu_time_ns):
                out += [f"  vcpu.{index}.state=1", f"  vcpu.{index}.time={ns}"]
        if "interface" in groups:
            out.append(f"  net.count={len(stats.nets)}")
            for index, net in enumerate(stats.nets):
                out += [
                    f"  net.{index}.name={field(net.name)}",
                    f"  net.{index}.rx.bytes={net.rx_bytes}",
                    f"  net.{index}.tx.bytes={net.tx_bytes}",
                ]
        if "block" in groups:
            out.append(f"  block.count={len(stats.blocks)}")
            for index, block in enumerate(stats.blocks):
                out += [
                    f"  block.{index}.name={field(block.name)}",
                    f"  block.{index}.rd.reqs={block.rd_reqs}",
                    f"  block.{index}.rd.bytes={block.rd_bytes}",
                    f"  block.{index}.wr.reqs={block.wr_reqs}",
                    f"  block.{index}.wr.bytes={block.wr_bytes}",
                ]
    return "\n".join(out) + "\n"


async def cmd_domstats(shell: Shell, args: Args) -> bool:
    groups = {g for g in GROUPS if args.flag(g)} or set(GROUPS)
    conn = await shell.connection()
    summaries = await conn.list_summaries()
    names = args.text("domain")
    if names is not None:
        wanted = {(await shell.domain(names)).uuid}
        summaries = [s for s in summaries if s.uuid in wanted]
    stats: dict[str, DomainStats] = {}
    if any(s.state.is_active for s in summaries) and groups != {"state"}:
        samples = conn.stats_stream(1.0)
        sample = await anext(aiter(samples))
        await samples.aclose()  # type: ignore[attr-defined]
        stats = {d.uuid: d for d in sample.domains}
    blocks = [stats_lines(s, stats.get(s.uuid), groups) for s in summaries]
    shell.print("\n".join(blocks))
    return True


DOMSTATS = Command(
    "domstats",
    "get statistics about one or multiple domains",
    "Gets statistics about one or more (or all) domains",
    (
        Opt("state", "bool", "report domain state"),
        Opt("cpu-total", "bool", "report domain physical cpu usage"),
        Opt("balloon", "bool", "report domain balloon statistics"),
        Opt("vcpu", "bool", "report domain virtual cpu information"),
        Opt("interface", "bool", "report domain network interface information"),
        Opt("block", "bool", "report domain block device statistics"),
        Opt("domain", "string", "list only this domain", positional=True),
    ),
    cmd_domstats,
)
