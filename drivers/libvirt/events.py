"""libvirt's domain events as virtdeck's: the enums already mirror libvirt's numbers.

:class:`EventBridge` registers one callback per libvirt event kind on a connection (they
run on the asyncio loop, dispatched by libvirtaio) and hands each converted event to
``publish``. Nothing here asks libvirt anything: the domain's name and UUID come with the
event, so a callback costs no round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drivers.model import (
    BalloonChangeEvent,
    ControlErrorEvent,
    DomainEvent,
    EventType,
    IOErrorEvent,
    LifecycleEvent,
    PMEvent,
    RebootEvent,
    RTCChangeEvent,
    WatchdogEvent,
)

Publish = Callable[[DomainEvent], None]

# libvirt's VIR_DOMAIN_EVENT_WATCHDOG_* and VIR_DOMAIN_EVENT_IO_ERROR_* numbers, in the
# words QEMU's own events (and so our QEMU driver) use.
_WATCHDOG = ("none", "pause", "reset", "poweroff", "shutdown", "debug", "inject-nmi")
_IO_ACTIONS = ("ignore", "stop", "report")


def _ident(dom: Any) -> dict[str, Any]:
    return {"domain": dom.name(), "uuid": dom.UUIDString()}


def lifecycle(dom: Any, event: int, detail: int) -> LifecycleEvent | None:
    """The LifecycleEvent for libvirt's (event, detail) numbers; None for kinds this
    version of virtdeck does not know (a newer libvirt's)."""
    try:
        kind = EventType(event)
        words = kind.detail(detail)
    except ValueError:
        return None
    return LifecycleEvent(**_ident(dom), type=kind, detail=words)


class EventBridge:
    """The callbacks of one libvirt connection; :meth:`close` deregisters them."""

    def __init__(self, libvirt: Any, conn: Any, publish: Publish) -> None:
        self._conn = conn
        self._publish = publish
        self._ids: list[int] = []
        lv = libvirt
        for event_id, callback in (
            (lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle),
            (lv.VIR_DOMAIN_EVENT_ID_REBOOT, self._reboot),
            (lv.VIR_DOMAIN_EVENT_ID_RTC_CHANGE, self._rtc),
            (lv.VIR_DOMAIN_EVENT_ID_WATCHDOG, self._watchdog),
            (lv.VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON, self._io_error),
            (lv.VIR_DOMAIN_EVENT_ID_CONTROL_ERROR, self._control_error),
            (lv.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE, self._balloon),
            (lv.VIR_DOMAIN_EVENT_ID_PMSUSPEND, self._pm("suspend")),
            (lv.VIR_DOMAIN_EVENT_ID_PMSUSPEND_DISK, self._pm("suspend-disk")),
            (lv.VIR_DOMAIN_EVENT_ID_PMWAKEUP, self._pm("wakeup")),
        ):
            self._ids.append(conn.domainEventRegisterAny(None, event_id, callback, None))

    def close(self) -> None:
        ids, self._ids = self._ids, []
        for callback_id in ids:
            try:
                self._conn.domainEventDeregisterAny(callback_id)
            except Exception:  # a broken connection has dropped them already
                break

    # libvirt's signatures: (conn, dom, ...event fields..., opaque)

    def _lifecycle(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        converted = lifecycle(dom, event, detail)
        if converted is not None:
            self._publish(converted)

    def _reboot(self, _conn: Any, dom: Any, _opaque: Any) -> None:
        self._publish(RebootEvent(**_ident(dom)))

    def _rtc(self, _conn: Any, dom: Any, offset: int, _opaque: Any) -> None:
        self._publish(RTCChangeEvent(**_ident(dom), offset=int(offset)))

    def _watchdog(self, _conn: Any, dom: Any, action: int, _opaque: Any) -> None:
        words = _WATCHDOG[action] if 0 <= action < len(_WATCHDOG) else "unknown"
        self._publish(WatchdogEvent(**_ident(dom), action=words))

    def _io_error(
        self,
        _conn: Any,
        dom: Any,
        _path: str,
        alias: str,
        action: int,
        reason: str,
        _opaque: Any,
    ) -> None:
        words = _IO_ACTIONS[action] if 0 <= action < len(_IO_ACTIONS) else "unknown"
        self._publish(IOErrorEvent(**_ident(dom), device=alias, action=words, reason=reason))

    def _control_error(self, _conn: Any, dom: Any, _opaque: Any) -> None:
        self._publish(
            ControlErrorEvent(**_ident(dom), message="libvirt lost control of the domain")
        )

    def _balloon(self, _conn: Any, dom: Any, actual: int, _opaque: Any) -> None:
        self._publish(BalloonChangeEvent(**_ident(dom), actual_kib=int(actual)))

    def _pm(self, phase: str) -> Callable[[Any, Any, int, Any], None]:
        def callback(_conn: Any, dom: Any, _reason: int, _opaque: Any) -> None:
            self._publish(PMEvent(**_ident(dom), phase=phase))

        return callback

