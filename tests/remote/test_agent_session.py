"""interface_addresses and shutdown(mode=...) through the session daemon (qemu:///session).

A diskless QEMU with virt-manager's guest-agent channel and a user-mode NIC: nothing in it
ever opens the port, so each answer is a refusal, and each must cross the daemon protocol
as its own error class with its sentence intact. The live XML shows the channel's state.
"""

from __future__ import annotations

import pytest

import drivers
from drivers.errors import AgentUnavailable, InvalidArgument, NotSupported, OperationInvalid
from tests.conftest import require_qemu
from tests.e2e.helpers import diskless_xml
from tests.remote.conftest import Session

pytestmark = pytest.mark.qemu

DEVICES = (
    "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
    "<interface type='user'><mac address='52:54:00:00:aa:01'/><model type='virtio'/></interface>"
)


async def test_addresses_and_agent_shutdown_via_the_session_daemon(session: Session) -> None:
    require_qemu()
    async with await drivers.open("qemu:///session") as conn:
        xml = diskless_xml("ch1").replace("<memballoon", DEVICES + "<memballoon")
        dom = await conn.define_xml(xml)
        with pytest.raises(OperationInvalid, match="is not running"):
            await dom.interface_addresses("agent")
        await dom.start()
        try:
            live = await dom.xml()
            assert 'name="org.qemu.guest_agent.0" state="disconnected"' in live
            assert "state=" not in await dom.xml(inactive=True)
            with pytest.raises(AgentUnavailable, match="not connected in domain 'ch1'"):
                await dom.interface_addresses("agent")
            with pytest.raises(AgentUnavailable, match="not connected in domain 'ch1'"):
                await dom.shutdown(mode="agent")
            with pytest.raises(NotSupported, match="only user-mode network interfaces"):
                await dom.interface_addresses("lease")
            with pytest.raises(InvalidArgument, match="Unknown address source 'dhcp'"):
                await dom.interface_addresses("dhcp")
            with pytest.raises(InvalidArgument, match="Unknown shutdown mode 'initctl'"):
                await dom.shutdown(mode="initctl")
            assert (await dom.state())[0].is_active  # nothing happened to it
        finally:
            await dom.destroy()
