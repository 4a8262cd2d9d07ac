"""One CLI invocation: where output goes, the connection, and finding the domain a user named."""

from __future__ import annotations

import sys

from drivers.errors import NoSuchDomain
from tui.text import inert
from tui.virsh.options import is_uint

TYPE_CHECKING = False  # not typing's: see drivers/records.py (one-shot CLI start-up)
if TYPE_CHECKING:
    from typing import TextIO

    from drivers.api import Connection, Domain
    from drivers.model import DomainSummary

_UUID_LENGTH = 36


class Shell:
    """Output streams and a connection that is opened on first use.

    Everything written goes through :func:`~tui.text.inert`, so nothing a guest or a peer
    chose can reach the terminal as a control sequence, whichever command printed it.
    """

    def __init__(
        self,
        uri: str,
        *,
        quiet: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
        conn: Connection | None = None,
    ) -> None:
        self.uri = uri
        self.quiet = quiet
        # Looked up now, not at import, so redirected streams (tests, pipes) are honoured.
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self._conn = conn
        self._owns_conn = conn is None

    # --- output -----------------------------------------------------------------------

    def print(self, text: str, *, flush: bool = False) -> None:
        """What virsh's vshPrint writes: always shown."""
        self.out.write(inert(text))
        if flush:
            self.out.flush()

    def extra(self, text: str) -> None:
        """What virsh's vshPrintExtra writes: informational, left out under ``--quiet``."""
        if not self.quiet:
            self.print(text)

    def error(self, message: str) -> None:
        self.out.flush()
        self.err.write(f"error: {inert(message)}\n")
        self.err.flush()

    # --- the connection -----------------------------------------------------------------

    async def connection(self) -> Connection:
        if self._conn is None:
            import drivers

            self._conn = await drivers.open(self.uri)
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._owns_conn:
            await conn.close()

    # --- naming domains -----------------------------------------------------------------

    async def domain(
        self, ref: str, *, by_id: bool = True, by_uuid: bool = True, by_name: bool = True
    ) -> Domain:
        """The domain ``ref`` names, trying it as an id, a UUID and a name in virsh's order."""
        conn = await self.connection()
        if by_id and is_uint(ref):
            wanted = int(ref)
            for summary in await conn.list_summaries():
                if summary.id == wanted:
                    return await conn.lookup_by_uuid(summary.uuid)
        if by_uuid and len(ref) == _UUID_LENGTH:
            try:
                return await conn.lookup_by_uuid(ref)
            except NoSuchDomain:
                if not by_name:
                    raise
        if by_name:
            return await conn.lookup(ref)
        kinds = " or ".join(
            kind for kind, used in (("id", by_id), ("UUID", by_uuid), ("name", by_name)) if used
        )
        raise NoSuchDomain(f"No domain has the {kinds} '{ref}'.")

    async def summary(self, domain: Domain) -> DomainSummary | None:
        """The list row of ``domain`` (the API offers persistence and title only there)."""
        conn = await self.connection()
        for summary in await conn.list_summaries():
            if summary.uuid == domain.uuid:
                return summary
        return None
