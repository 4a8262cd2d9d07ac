"""The lifecycle settings the QEMU driver refuses, and the sentences it says
(libvirt 9.0's rules; tests/differential/test_lifecycle_actions.py compares all 96)."""

from __future__ import annotations

import pytest

from drivers.domxml import DomainDef, parse_domain
from drivers.qemu.lifecycle import refused_actions


def _defn(on_poweroff: str, on_reboot: str, on_crash: str) -> DomainDef:
    return parse_domain(
        f"""<domain type='qemu'><name>a</name><memory unit='MiB'>64</memory>
        <on_poweroff>{on_poweroff}</on_poweroff><on_reboot>{on_reboot}</on_reboot>
        <on_crash>{on_crash}</on_crash></domain>"""
    )


@pytest.mark.parametrize(
    ("actions", "words"),
    [
        (("destroy", "restart", "destroy"), []),
        (("restart", "restart", "preserve"), []),
        (("destroy", "destroy", "coredump-restart"), []),
        (("rename-restart", "restart", "rename-restart"), ["<on_poweroff>, <on_crash>: 'rename"]),
        (("preserve", "preserve", "destroy"), ["<on_poweroff>, <on_reboot>: 'preserve' is only"]),
        (("restart", "destroy", "destroy"), ["<on_reboot>destroy</on_reboot> cannot go with"]),
    ],
)
def test_refused_actions(actions: tuple[str, str, str], words: list[str]) -> None:
    problems = refused_actions(_defn(*actions))
    assert len(problems) == len(words)
    for problem, start in zip(problems, words, strict=True):
        assert problem.startswith(start), problem
        assert problem.endswith(".")
