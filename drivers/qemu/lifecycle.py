"""Which ``<on_poweroff>``/``<on_reboot>``/``<on_crash>`` combinations the QEMU driver runs.

The same as libvirt 9.0's QEMU driver, checked with ``virsh define`` of all 96
combinations (tests/differential/test_lifecycle_actions.py): ``rename-restart`` nowhere
(it renames the domain, a Xen feature), ``preserve`` only for ``on_crash`` (a powered-off
or resetting guest cannot be kept), and not ``on_reboot=destroy`` with
``on_poweroff=restart`` (QEMU is told to turn a reset into a power-off, which would then
restart the guest). Everything else is accepted, and honoured by the event handler.
"""

from __future__ import annotations

from drivers.domxml import DomainDef, LifecycleAction

A = LifecycleAction


def refused_actions(defn: DomainDef) -> list[str]:
    """One sentence per lifecycle setting of ``defn`` the QEMU driver cannot honour."""
    problems: list[str] = []
    settings = {
        "on_poweroff": defn.on_poweroff,
        "on_reboot": defn.on_reboot,
        "on_crash": defn.on_crash,
    }
    renamed = [name for name, action in settings.items() if action is A.RENAME_RESTART]
    if renamed:
        where = ", ".join(f"<{name}>" for name in renamed)
        problems.append(
            f"{where}: 'rename-restart' is not supported by the QEMU driver; write 'restart'."
        )
    kept = [name for name in ("on_poweroff", "on_reboot") if settings[name] is A.PRESERVE]
    if kept:
        where = ", ".join(f"<{name}>" for name in kept)
        problems.append(
            f"{where}: 'preserve' is only supported for <on_crash>; write 'destroy' or 'restart'."
        )
    if defn.on_reboot is A.DESTROY and defn.on_poweroff is A.RESTART:
        problems.append(
            "<on_reboot>destroy</on_reboot> cannot go with <on_poweroff>restart</on_poweroff> "
            "(a reboot would power the guest off and the power-off restart it); change one "
            "of them."
        )
    return problems
