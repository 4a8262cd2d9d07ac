"""The new-domain form on test:///default: validation, each boot source, disks, failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, RadioButton, Select, Static

from drivers.api import Connection
from drivers.domxml import parse_domain
from drivers.errors import HypervisorError
from drivers.model import DomainState
from drivers.qemu.registry import RuntimeDomain
from drivers.test.driver import IMAGE_DIR, TestConnection
from tests.tui_forms.helpers import SIZE, FormHost, fill, type_into, until
from tui.screens.new_domain import DEBOUNCE, NewDomainScreen, highlight_xml

ALPINE = f"{IMAGE_DIR}/alpine-virt-3.20.3-x86_64.iso"
DEBIAN = f"{IMAGE_DIR}/debian-12.8.0-amd64-netinst.iso"
BUILD_DISK = f"{IMAGE_DIR}/build.qcow2"


def host_app(**more: object) -> FormHost:
    def build(conns: dict[str, Connection]) -> NewDomainScreen:
        return NewDomainScreen(conns, "local")

    return FormHost(build, **more)  # type: ignore[arg-type]


def form(app: FormHost) -> NewDomainScreen:
    assert isinstance(app.form, NewDomainScreen)
    return app.form


async def loaded(pilot: Pilot[None], app: FormHost) -> NewDomainScreen:
    """Wait until the form has read its host and shows it."""
    await until(pilot, lambda: app.form is not None and app.screen is app.form, what="the form")
    screen = form(app)
    await until(pilot, lambda: screen.names is not None, what="the host's names")
    await pilot.pause()
    return screen


async def settle(pilot: Pilot[None]) -> None:
    """Let the debounced update run."""
    await pilot.pause(DEBOUNCE + 0.05)
    await pilot.pause()


def error_of(screen: NewDomainScreen, key: str) -> str:
    return str(screen.query_one(f"#err-{key}", Static).render())


def button(screen: NewDomainScreen, button_id: str) -> Button:
    return screen.query_one(f"#{button_id}", Button)


async def names(conn: Connection) -> list[str]:
    return [s.name for s in await conn.list_summaries()]


async def volume_names(conn: Connection) -> list[str]:
    return [v.name for v in await conn.list_volumes()]


# --- the empty form ----------------------------------------------------------------------------


async def test_the_form_starts_with_defaults_and_no_shouting() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        assert screen.names == frozenset({"test", "web1", "db1", "build", "kernel-dev"})
        # The first ISO image of the pool is chosen; names are sorted, alpine first.
        assert screen.query_one("#iso", Select).value == ALPINE
        # Nothing typed yet: no error under the name, only a hint, and no way to define.
        assert error_of(screen, "name") == ""
        assert "Give the domain a name" in str(screen.status.render())
        assert button(screen, "define").disabled
        assert button(screen, "define-start").disabled
        preview = str(screen.preview.render())
        assert '<boot dev="cdrom"/>' in preview
        assert f"{IMAGE_DIR}/disk.qcow2" in preview  # the image the pool would get


# --- name validation -------------------------------------------------------------------------


async def test_a_duplicate_name_is_refused_as_typed() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "web1")
        await settle(pilot)
        assert "A domain called 'web1' already exists on this host" in error_of(screen, "name")
        assert screen.query_one("#name").has_class("-invalid")
        assert button(screen, "define").disabled
        await pilot.press("2")
        await settle(pilot)
        assert error_of(screen, "name") == ""
        assert not button(screen, "define").disabled
        assert "<name>web12</name>" in str(screen.preview.render())


async def test_bad_characters_in_names() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "a/b")
        await settle(pilot)
        assert "cannot contain '/'" in error_of(screen, "name")
        await pilot.press("ctrl+u", ".", "x")
        await settle(pilot)
        assert "starting with '.'" in error_of(screen, "name")
        await pilot.press("ctrl+u", "x", "space")
        await settle(pilot)
        assert "starts or ends with a space" in error_of(screen, "name")
        await pilot.press("ctrl+u")
        await settle(pilot)
        assert "Give the domain a name" in error_of(screen, "name")
        assert button(screen, "define").disabled


async def test_names_are_checked_against_the_chosen_host(tmp_path: Path) -> None:
    other = tmp_path / "other.xml"
    other.write_text("<node/>")

    async def no_pool(conns: dict[str, Connection]) -> None:
        conn = conns["other"]
        assert isinstance(conn, TestConnection)
        conn.registry.pool = None  # a host without a storage pool

    app = host_app(
        uris=[("local", "test:///default"), ("other", f"test://{other}")], prepare=no_pool
    )
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "web1")
        await settle(pilot)
        assert "already exists" in error_of(screen, "name")
        screen.query_one("#host", Select).value = "other"
        await until(pilot, lambda: screen.host == "other" and screen.names is not None)
        await settle(pilot)
        assert screen.names == frozenset()
        assert error_of(screen, "name") == ""
        # A host without a storage pool: no ISO, no new image.
        assert "other's image directory has no ISO images" in error_of(screen, "iso_path")
        assert "other has no image directory" in error_of(screen, "disk")
        assert button(screen, "define").disabled


async def test_numbers_are_checked() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "vm1")
        await fill(pilot, "#memory", "5")
        await fill(pilot, "#vcpus", "0")
        await settle(pilot)
        assert "between 16 and" in error_of(screen, "memory_mib")
        assert "1 to 255 vCPUs" in error_of(screen, "vcpus")
        assert button(screen, "define").disabled


# --- defining ----------------------------------------------------------------------------------


async def test_iso_install_on_a_new_disk() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "vm1")
        await fill(pilot, "#disk-size", "25")
        screen.query_one("#iso", Select).value = DEBIAN
        await settle(pilot)
        assert not button(screen, "define").disabled
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.results != [], what="the form to close")
        assert app.results == [("local", "vm1")]
        conn = app.conn
        volumes = {v.name: v for v in await conn.list_volumes()}
        assert volumes["vm1.qcow2"].capacity_bytes == 25 << 30
        assert volumes["vm1.qcow2"].format == "qcow2"
        dom = await conn.lookup("vm1")
        assert (await dom.state())[0] is DomainState.SHUTOFF
        defn = parse_domain(await dom.xml(inactive=True))
        assert [(d.device, d.source, d.driver_type) for d in defn.disks] == [
            ("disk", f"{IMAGE_DIR}/vm1.qcow2", "qcow2"),
            ("cdrom", DEBIAN, "raw"),
        ]
        assert defn.boot_devs == ["cdrom", "hd"]
        assert defn.memory_kib == 1024 * 1024 and defn.vcpus == 1
        assert [(i.type, i.model) for i in defn.interfaces] == [("user", "virtio")]
        assert [g.listen for g in defn.graphics] == ["127.0.0.1"]
        assert len(defn.serials) == 1 and len(defn.consoles) == 1
        assert defn.memballoon is not None and defn.memballoon.model == "virtio"


async def test_boot_from_an_existing_disk_image() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "again")
        screen.query_one("#boot-disk", RadioButton).value = True
        await settle(pilot)
        # Booting from a disk uses the existing image as the disk: no other disk choice.
        assert screen.query_one("#f-disk").has_class("-hidden")
        assert not screen.query_one("#f-existing_disk_path").has_class("-hidden")
        assert not screen.query_one("#new-disk-row").display
        assert "Choose a disk image" in error_of(screen, "existing_disk_path")
        screen.query_one("#existing-disk", Select).value = BUILD_DISK
        await settle(pilot)
        before = await volume_names(app.conn)
        await pilot.click("#define")
        await until(pilot, lambda: app.results != [])
        assert app.results == [("local", "again")]
        defn = parse_domain(await (await app.conn.lookup("again")).xml())
        assert [(d.device, d.source, d.driver_type) for d in defn.disks] == [
            ("disk", BUILD_DISK, "qcow2")
        ]
        assert defn.boot_devs == ["hd"]
        assert await volume_names(app.conn) == before


async def test_direct_kernel_boot_without_a_disk() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "k1")
        screen.query_one("#boot-kernel", RadioButton).value = True
        screen.query_one("#disk-none", RadioButton).value = True
        screen.query_one("#net-none", RadioButton).value = True
        await settle(pilot)
        assert not screen.query_one("#f-kernel").has_class("-hidden")
        assert screen.query_one("#f-iso_path").has_class("-hidden")
        # Not typed into yet: the hint line says what is missing, the field stays calm.
        assert error_of(screen, "kernel") == ""
        assert "Give the kernel" in str(screen.status.render())
        await type_into(pilot, "#kernel", "vmlinuz")
        await settle(pilot)
        assert "absolute path" in error_of(screen, "kernel")
        await fill(pilot, "#kernel", "/boot/vmlinuz")
        await fill(pilot, "#initrd", "/boot/initrd.img")
        await fill(pilot, "#cmdline", "console=ttyS0")
        await settle(pilot)
        assert error_of(screen, "kernel") == ""
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.results != [])
        defn = parse_domain(await (await app.conn.lookup("k1")).xml())
        assert (defn.kernel, defn.initrd, defn.cmdline) == (
            "/boot/vmlinuz",
            "/boot/initrd.img",
            "console=ttyS0",
        )
        assert defn.disks == [] and defn.interfaces == []
        assert defn.boot_devs == []


async def test_bridge_raw_disk_no_vnc_no_serial_and_on_crash() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "br")
        screen.query_one("#net-bridge", RadioButton).value = True
        screen.query_one("#disk-format", Select).value = "raw"
        screen.query_one("#vnc").action_toggle_switch()  # type: ignore[attr-defined]
        screen.query_one("#serial").action_toggle_switch()  # type: ignore[attr-defined]
        screen.query_one("#on-crash", Select).value = "preserve"
        await settle(pilot)
        assert "bridge's name" in str(screen.status.render())
        await fill(pilot, "#bridge", "br 0")
        await settle(pilot)
        assert "bridge's name" in error_of(screen, "bridge")
        await fill(pilot, "#bridge", "br0")
        await settle(pilot)
        preview = str(screen.preview.render())
        assert '<source bridge="br0"/>' in preview and "<graphics" not in preview
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.results != [])
        defn = parse_domain(await (await app.conn.lookup("br")).xml())
        assert [(i.type, i.source_bridge) for i in defn.interfaces] == [("bridge", "br0")]
        assert defn.disks[0].source == f"{IMAGE_DIR}/br.img"
        assert defn.disks[0].driver_type == "raw"
        assert defn.graphics == [] and defn.serials == [] and defn.consoles == []
        assert defn.on_crash.value == "preserve"
        assert "br.img" in await volume_names(app.conn)


async def test_define_and_start_leaves_the_state_to_the_driver() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "runner")
        await settle(pilot)
        events = app.conn.events()
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.results != [])
        assert app.results == [("local", "runner")]
        dom = await app.conn.lookup("runner")
        assert (await dom.state())[0] is DomainState.RUNNING
        # The driver said so with its own events: defined, then started.
        kinds = [getattr(e, "type", None) for e in events.pending()]
        seen = [k.name for k in kinds if k is not None]
        assert seen[0] == "DEFINED" and "STARTED" in seen, seen
        assert screen.is_attached is False


async def test_a_failed_define_removes_the_new_image_and_keeps_the_form() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await type_into(pilot, "#name", "race")
        await settle(pilot)
        assert not button(screen, "define").disabled
        # Someone else defines 'race' (with another UUID) after the form read the names.
        await app.conn.define_xml(
            "<domain type='qemu'><name>race</name><memory unit='MiB'>64</memory></domain>"
        )
        before = await volume_names(app.conn)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not screen.busy and screen.submit_error != "")
        await pilot.pause()
        assert "Domain 'race' already exists" in str(screen.status.render())
        assert screen.status.has_class("-error")
        assert app.results == []
        assert app.screen is screen
        assert "race.qcow2" not in await volume_names(app.conn)
        assert await volume_names(app.conn) == before
        assert await names(app.conn) == ["build", "db1", "kernel-dev", "race", "test", "web1"]


async def test_an_image_that_exists_already_is_not_overwritten() -> None:
    async def orphan(conns: dict[str, Connection]) -> None:
        await conns["local"].create_volume("orphan.qcow2", 1 << 30)

    app = host_app(prepare=orphan)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await fill(pilot, "#name", "orphan")
        await settle(pilot)
        assert error_of(screen, "name") == ""
        assert "The image orphan.qcow2 already exists" in error_of(screen, "disk")
        assert button(screen, "define").disabled
        screen.query_one("#disk-format", Select).value = "raw"
        await settle(pilot)
        assert error_of(screen, "disk") == ""
        assert f"{IMAGE_DIR}/orphan.img" in str(screen.preview.render())
        assert not button(screen, "define").disabled


async def test_cancel_creates_nothing() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await type_into(pilot, "#name", "never")
        await settle(pilot)
        before = await volume_names(app.conn)
        await pilot.press("escape")
        await until(pilot, lambda: app.results != [])
        assert app.results == [None]
        assert "never" not in await names(app.conn)
        assert await volume_names(app.conn) == before


async def test_a_host_that_cannot_be_read_says_so() -> None:
    async def close(conns: dict[str, Connection]) -> None:
        await conns["local"].close()

    app = host_app(prepare=close)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.form is not None and app.screen is app.form)
        screen = form(app)
        await until(pilot, lambda: screen.host_error != "")
        await pilot.pause()
        assert "Cannot read local: This connection is closed" in str(screen.status.render())
        assert button(screen, "define").disabled


async def test_guest_strings_are_shown_inert() -> None:
    async def odd_volume(conns: dict[str, Connection]) -> None:
        from drivers.model import VolumeInfo
        from drivers.storage import MemoryPool
        from drivers.test.driver import default_registry

        pool = default_registry().pool
        assert isinstance(pool, MemoryPool)
        name = "[bold]x\x1b[31m.iso"
        pool.volumes[name] = VolumeInfo(name, f"{IMAGE_DIR}/x.iso", "iso", 1 << 20, 1 << 20)

    app = host_app(prepare=odd_volume)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        select = screen.query_one("#iso", Select)
        select.value = f"{IMAGE_DIR}/x.iso"
        await settle(pilot)
        shown = str(select.query_one("SelectCurrent Static").render())
        assert "[bold]x\\x1b[31m.iso" in shown


async def test_a_domain_that_does_not_start_is_still_defined_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(self: RuntimeDomain, paused: bool = False) -> None:
        raise HypervisorError("QEMU refused to start: no more memory.")

    monkeypatch.setattr(RuntimeDomain, "start", refuse)
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await fill(pilot, "#name", "stubborn")
        await settle(pilot)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.results != [])
        assert app.results == [("local", "stubborn")]
        dom = await app.conn.lookup("stubborn")
        assert (await dom.state())[0] is DomainState.SHUTOFF
        [note] = list(app._notifications)
        assert note.severity == "error"
        assert note.message == (
            "stubborn was defined on local but did not start: QEMU refused to start: no more "
            "memory."
        )


async def test_the_form_is_locked_while_defining() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await fill(pilot, "#name", "slow")
        await settle(pilot)
        screen.busy = True
        screen.update_form()
        assert screen.query_one("#nd-form").disabled
        assert button(screen, "cancel").disabled
        assert screen.check_action("cancel", ()) is None
        assert screen.check_action("define", ()) is None
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and app.results == []


async def test_defining_an_invalid_form_reveals_every_error() -> None:
    app = host_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        screen.query_one("#net-bridge", RadioButton).value = True
        await settle(pilot)
        assert error_of(screen, "name") == "" and error_of(screen, "bridge") == ""
        screen.action_define(False)  # what a palette entry would call
        await pilot.pause()
        assert "Give the domain a name" in error_of(screen, "name")
        assert "bridge's name" in error_of(screen, "bridge")
        assert not screen.busy and app.results == []


async def test_kvm_where_the_caller_allows_it() -> None:
    def build(conns: dict[str, Connection]) -> NewDomainScreen:
        return NewDomainScreen(conns, "local", kvm_hosts={"local"})

    app = FormHost(build)
    async with app.run_test(size=SIZE) as pilot:
        screen = await loaded(pilot, app)
        await fill(pilot, "#name", "fast")
        await settle(pilot)
        preview = str(screen.preview.render())
        assert '<domain type="kvm">' in preview
        assert '<cpu mode="host-passthrough"/>' in preview
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.results != [])
        defn = parse_domain(await (await app.conn.lookup("fast")).xml())
        assert defn.virt_type == "kvm"


def test_the_preview_is_inert_and_coloured_by_theme_variables() -> None:
    content = highlight_xml("<a x='1'>\x1b[2J<!-- c --></a>\n")
    assert "\x1b" not in content.plain and "\\x1b[2J" in content.plain
    styles = {content.plain[s.start : s.end]: s.style for s in content.spans}
    assert styles["a"] == "$text-primary"
    assert styles["x"] == "$text-accent"
    assert styles["'1'"] == "$text-success"
    assert styles["<!-- c -->"] == "$text-muted"
    assert all(isinstance(s, str) and s.startswith("$") for s in styles.values())
