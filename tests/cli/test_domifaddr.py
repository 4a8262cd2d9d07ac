"""``virtdeck domifaddr`` and ``virtdeck shutdown --mode``, in virsh's exact words.

The test driver gives the same made-up addresses as libvirt's test driver, so the same
node document run through ``virsh -c test:///FILE`` and ``virtdeck -c test:///FILE`` must
print the same bytes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from drivers.model import InterfaceAddresses, IPAddress
from tests.cli.helpers import cli
from tests.conftest import require
from tui.virsh.guest import addresses_table

NODE = """\
<node>
<network><name>default</name><bridge name='virbr0'/>
<ip address='192.168.122.1' netmask='255.255.255.0'>
<dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>
<domain type='test'><name>a1</name><memory>8192</memory><os><type>hvm</type></os><devices>
<interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/></interface>
<interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='br0'/></interface>
</devices></domain>
<domain type='test'><name>a2</name><memory>8192</memory><os><type>hvm</type></os><devices>
<interface type='network'><mac address='52:54:00:00:00:03'/><source network='default'/></interface>
</devices></domain>
</node>
"""


@pytest.mark.parametrize(
    "words",
    [
        ["domifaddr", "a1"],
        ["domifaddr", "a2", "--full"],
        ["domifaddr", "a1", "--source", "arp", "--interface", "testnet1"],
        ["domifaddr", "a1", "--interface", "nothing"],
        ["domifaddr", "a1", "--source", "agent"],
    ],
)
def test_same_bytes_as_virsh(tmp_path: Path, words: list[str]) -> None:
    virsh = shutil.which("virsh")
    require(virsh is not None, "virsh is not installed (apt-get install libvirt-clients)")
    assert virsh is not None
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    uri = f"test://{node}"
    theirs = subprocess.run(
        [virsh, "-c", uri, *words], capture_output=True, text=True, check=False, timeout=30
    )
    ours = cli("-c", uri, *words)
    assert ours.stdout == theirs.stdout
    assert ours.returncode == theirs.returncode


def test_unknown_source_and_mode_are_virshs_errors() -> None:
    bad_source = cli("-c", "test:///default", "domifaddr", "test", "--source", "dhcp")
    assert bad_source.returncode == 1
    assert bad_source.stderr == "error: Unknown data source 'dhcp'\n"
    bad_mode = cli("-c", "test:///default", "shutdown", "test", "--mode", "bogus")
    assert bad_mode.returncode == 1
    assert bad_mode.stderr.startswith(
        "error: Unknown mode bogus value, expecting 'acpi', 'agent', 'initctl', 'signal', "
        "or 'paravirt'\n"
    )


def test_shutdown_mode_agent_on_the_test_driver() -> None:
    done = cli("-c", "test:///default", "shutdown", "--mode", "agent", "test")
    assert (done.returncode, done.stdout) == (0, "Domain 'test' is being shutdown\n\n")


def test_table_with_several_addresses_and_none() -> None:
    found = [
        InterfaceAddresses(
            "lo",
            "00:00:00:00:00:00",
            (IPAddress("ipv4", "127.0.0.1", 8), IPAddress("ipv6", "::1", 128)),
        ),
        InterfaceAddresses("eth\x1b[31m1", None, ()),
    ]
    # virsh's printf columns: " %-10s %-17s    %-12s %s/%d", "-" for a repeated name
    assert addresses_table(found, interface=None, full=False) == (
        " Name       MAC address          Protocol     Address\n" + "-" * 79 + "\n"
        " lo         00:00:00:00:00:00    ipv4         127.0.0.1/8\n"
        " -          -                    ipv6         ::1/128\n"
        " eth\\x1b[31m1 N/A                  N/A          N/A\n"
    )
    assert addresses_table(found[:1], interface=None, full=True).splitlines()[3] == (
        " lo         00:00:00:00:00:00    ipv6         ::1/128"
    )
