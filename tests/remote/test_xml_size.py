"""A domain XML too large for one protocol frame is refused on the client, in the words a
too-large XML gets locally, before anything is written to the daemon."""

from __future__ import annotations

import asyncio

import pytest

from drivers.domxml import MAX_XML_BYTES
from drivers.errors import InvalidArgument, InvalidXML
from drivers.remote import protocol as p
from drivers.remote.client import RemoteConnection


def _xml(size: int) -> str:
    head, tail = "<domain type='qemu'><name>big</name><description>", "</description></domain>"
    return head + "x" * (size - len(head) - len(tail)) + tail


def test_a_call_over_the_frame_limit_names_the_xml_and_the_limit() -> None:
    xml = _xml(MAX_XML_BYTES)
    with pytest.raises(InvalidXML) as caught:
        p.encode_call(1, "define_xml", {"xml": xml})
    assert str(caught.value) == (
        f"The domain XML is {MAX_XML_BYTES} bytes; the limit is 4 MiB per message over a "
        "remote connection (quotes and newlines count twice). Real definitions are a few "
        "kilobytes, so remove what makes it this large (often a pasted log or image in "
        "<description> or <metadata>)."
    )
    with pytest.raises(InvalidArgument, match=r"The 'x' call is larger than the 4 MiB"):
        p.encode_call(2, "x", {"data": "y" * p.MAX_FRAME})
    # a 3 MB definition (what libvirt takes) fits
    assert len(p.encode_call(3, "define_xml", {"xml": _xml(3_000_000)})) < p.MAX_FRAME


class _Writer:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


async def test_remote_define_refuses_before_writing() -> None:
    writer = _Writer()
    conn = RemoteConnection(asyncio.StreamReader(), writer, "qemu+unix:///session")
    with pytest.raises(InvalidXML, match=r"the limit is 4 MiB per message over a remote"):
        await conn.define_xml(_xml(MAX_XML_BYTES))
    assert writer.written == b"" and not conn._pending


async def test_a_reply_too_large_for_a_frame_says_so_about_the_xml() -> None:
    """dumpxml of a definition over the frame limit (it fits the 4 MiB XML limit only
    locally): the client gets the same sentence instead of a lost reply."""
    import json

    import drivers
    from drivers.remote.server import ClientSession, Server

    conn = await drivers.open("test:///default")
    try:
        session = ClientSession(
            Server(conn, "test:///default"),
            asyncio.StreamReader(),
            _Writer(),  # type: ignore[arg-type]
            "test",
        )
        xml = _xml(MAX_XML_BYTES)
        session.send({"type": "reply", "id": 1, "result": xml})
        frame = session.queue.get_nowait()
        assert frame is not None
        reply = json.loads(frame[5:])
        assert reply["id"] == 1 and "result" not in reply
        assert reply["error"]["message"].startswith(
            f"The domain XML is {MAX_XML_BYTES} bytes; the limit is 4 MiB per message over "
            "a remote connection"
        )
    finally:
        await conn.close()
