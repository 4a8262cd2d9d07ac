"""``n``: the new-domain form, with inline validation and a live XML preview.

:class:`NewDomainScreen` asks for a name, host, memory, vCPUs, boot source, disk, network,
displays and crash action; :mod:`tui.domain_builder` checks the answers and writes the XML.
Host data (domain names, the pool's images) is read in a worker whenever the host changes.
"Define" creates the new disk image (if one is asked for), defines the domain and, for
"Define and start", starts it, all in one worker (and then, when the domain has a serial
console and "Open its console" is ticked, the main screen opens the console, so that an
installer booted with a serial console is right there); when defining fails the new image is
deleted again so that nothing half-made is left, and the driver's message shows in the form.
The screen never sets a domain's state: the host's events bring it to the table.

The screen dismisses with ``(host, name)`` of the new domain, or None when cancelled.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, ScrollableContainer, Vertical, VerticalScroll
from textual.content import Content, Span
from textual.events import Resize
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Select,
    Static,
    Switch,
)
from textual.worker import Worker, WorkerState

from drivers.api import Connection
from drivers.errors import VirtError
from drivers.model import VolumeInfo
from tui.domain_builder import (
    CRASH_ACTIONS,
    Boot,
    CrashAction,
    DiskChoice,
    DiskFormat,
    DomainSpec,
    Network,
    build_domain_xml,
    new_disk_name,
    validate_spec,
)
from tui.screens.dialogs import FramedDialog
from tui.text import inert
from tui.widgets.footer import key_hints

__all__ = ["NewDomainScreen", "highlight_xml"]

DEBOUNCE = 0.15
"""Seconds of quiet after a change before the errors and the preview are brought up to date."""

# (button id, value, label) of each radio choice; the first is the default.
_BOOT_CHOICES: tuple[tuple[str, Boot, str], ...] = (
    ("boot-iso", "iso", "ISO image"),
    ("boot-disk", "disk", "Existing disk image"),
    ("boot-kernel", "kernel", "Kernel, initrd and command line"),
)
_DISK_CHOICES: tuple[tuple[str, DiskChoice, str], ...] = (
    ("disk-new", "new", "New image"),
    ("disk-existing", "existing", "Existing image"),
    ("disk-none", "none", "None"),
)
_NETWORK_CHOICES: tuple[tuple[str, Network, str], ...] = (
    ("net-user", "user", "User-mode NAT"),
    ("net-none", "none", "None"),
    ("net-bridge", "bridge", "Bridge"),
)
_BOOTS: dict[str, Boot] = {button: value for button, value, _ in _BOOT_CHOICES}
_DISKS: dict[str, DiskChoice] = {button: value for button, value, _ in _DISK_CHOICES}
_NETWORKS: dict[str, Network] = {button: value for button, value, _ in _NETWORK_CHOICES}


def _radio_set(set_id: str, choices: tuple[tuple[str, str, str], ...]) -> RadioSet:
    """A RadioSet of ``choices``, the first pressed (RadioSet also highlights its first)."""
    buttons = (
        RadioButton(label, value=index == 0, id=button)
        for index, (button, _, label) in enumerate(choices)
    )
    return RadioSet(*buttons, id=set_id)


_CRASH_WORDS: dict[CrashAction, str] = {
    "destroy": "Stop it (destroy)",
    "restart": "Restart it",
    "preserve": "Keep it for debugging (preserve)",
}
_CRASH: dict[str, CrashAction] = {action: action for action in CRASH_ACTIONS}
NARROW = 100
"""Below this many columns the preview goes under the form, and starts hidden."""
# The spec fields that are typed into an Input: their errors wait until the user typed.
_TYPED = {
    "name": "#name",
    "memory_mib": "#memory",
    "vcpus": "#vcpus",
    "kernel": "#kernel",
    "initrd": "#initrd",
    "cmdline": "#cmdline",
    "disk_size_gib": "#disk-size",
    "bridge": "#bridge",
}
# Where each field's error shows when the field has no line of its own.
_ERROR_HOME = {"virt_type": "host", "disk_format": "disk_size_gib"}


# --- XML highlighting (theme variables only) ----------------------------------------------------

_MARKUP = re.compile(r"<!--.*?-->|<[^<>]*>", re.S)
_TAG_NAME = re.compile(r"</?([A-Za-z_][\w.:-]*)")
_ATTRIBUTE = re.compile(r"([A-Za-z_][\w.:-]*)\s*=\s*(\"[^\"]*\"|'[^']*')")


def highlight_xml(xml: str) -> Content:
    """``xml`` made inert and coloured with theme variables (tags, attributes, values)."""
    text = inert(xml)
    spans: list[Span] = []
    for markup in _MARKUP.finditer(text):
        start, end = markup.span()
        spans.append(Span(start, end, "$text-muted"))
        if markup.group().startswith("<!--"):
            continue
        name = _TAG_NAME.match(text, start)
        inner = start
        if name is not None:
            spans.append(Span(name.start(1), name.end(1), "$text-primary"))
            inner = name.end()
        for attribute in _ATTRIBUTE.finditer(text, inner, end):
            spans.append(Span(attribute.start(1), attribute.end(1), "$text-accent"))
            spans.append(Span(attribute.start(2), attribute.end(2), "$text-success"))
    return Content(text, spans)


def _size(size: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{size} B"


def _volume_option(volume: VolumeInfo) -> tuple[Text, str]:
    label = Text(inert(volume.name, one_line=True))
    label.append(f"  {_size(volume.capacity_bytes)}", style="dim")
    return label, volume.path


def _whole_number(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


class NewDomainScreen(FramedDialog[tuple[str, str] | None]):
    """The form for a new domain on one of the connected, writable hosts.

    Args:
        hosts: host name → its live connection (only connected, non-read-only hosts).
        default_host: the host chosen at first (the cursor row's host, say).
        kvm_hosts: the hosts that may run KVM domains; the others get TCG (``type='qemu'``).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s",
            "define(False)",
            "Define",
            id="new_domain.define",
            tooltip="Define the domain (it stays shut off)",
        ),
        Binding(
            "ctrl+r",
            "define(True)",
            "Define and start",
            id="new_domain.define_and_start",
            tooltip="Define the domain and start it",
        ),
        Binding(
            "ctrl+o",
            "toggle_preview",
            "XML preview",
            id="new_domain.preview",
            tooltip="Show or hide the XML preview",
        ),
        Binding(
            "escape",
            "cancel",
            "Cancel",
            id="new_domain.cancel",
            tooltip="Close the form; nothing is created",
        ),
    ]

    DEFAULT_CSS = """
    NewDomainScreen {
        #nd-dialog {
            width: 100%;
            max-width: 150;
            height: 100%;
        }
        #nd-body {
            height: 1fr;
        }
        #nd-form {
            width: 1fr;
            min-width: 44;
            padding-right: 1;
            scrollbar-gutter: stable;
        }
        #nd-preview-box {
            width: 1fr;
            padding-left: 1;
            border-left: vkey $panel;
        }
        #nd-preview-scroll {
            height: 1fr;
            overflow: auto auto;
        }
        #nd-preview {
            width: auto;
            text-wrap: nowrap;
        }
        .nd-heading {
            color: $text-muted;
            text-style: bold;
        }
        .nd-field {
            height: auto;
            & > Label {
                color: $text-muted;
            }
            &.-hidden {
                display: none;
            }
        }
        .nd-row {
            height: auto;
            & > .nd-field {
                width: 1fr;
                margin-right: 1;
            }
        }
        .nd-error {
            color: $text-error;
            &.-empty {
                display: none;
            }
        }
        Switch {
            width: auto;
        }
        &.-no-preview #nd-preview-box {
            display: none;
        }
        &.-narrow {
            #nd-body {
                layout: vertical;
            }
            #nd-form {
                height: 2fr;
                min-width: 0;
            }
            #nd-preview-box {
                width: 100%;
                height: 1fr;
                padding-left: 0;
                border-left: none;
                border-top: hkey $panel;
            }
        }
    }
    """

    @dataclass
    class HostLoaded(Message, bubble=False):
        """A host's domain names and pool, read for the form."""

        host: str
        names: frozenset[str]
        volumes: tuple[VolumeInfo, ...]
        pool_path: str | None
        storage: bool

    @dataclass
    class HostFailed(Message, bubble=False):
        """A host's data could not be read."""

        host: str
        message: str

    @dataclass
    class SubmitFailed(Message, bubble=False):
        """Nothing was defined (and any image made for it was removed again)."""

        message: str

    @dataclass
    class Defined(Message, bubble=False):
        """The domain exists; ``start_error`` says why it did not start, if asked to."""

        host: str
        name: str
        started: bool
        start_error: str | None
        uuid: str = ""

    name_input = getters.query_one("#name", Input)
    status = getters.query_one("#nd-status", Static)
    preview = getters.query_one("#nd-preview", Static)

    def __init__(
        self,
        hosts: Mapping[str, Connection],
        default_host: str,
        *,
        kvm_hosts: Collection[str] = (),
    ) -> None:
        if not hosts:
            raise ValueError("NewDomainScreen needs at least one connected, writable host")
        super().__init__()
        self.hosts = dict(hosts)
        self.kvm_hosts = frozenset(kvm_hosts)
        self.host = default_host if default_host in self.hosts else next(iter(self.hosts))
        """The chosen host."""
        self.names: frozenset[str] | None = None
        """The chosen host's domain names; None until read."""
        self.volumes: tuple[VolumeInfo, ...] = ()
        self.pool_path: str | None = None
        self.storage = False
        self.host_error = ""
        self.busy = False
        """True while the define worker runs."""
        self.submitted = False
        """Set by the first define attempt: from then on every error shows."""
        self.touched: set[str] = set()
        self.errors: dict[str, str] = {}
        self.submit_error = ""
        self._timer: Timer | None = None
        self.preview_wanted: bool | None = None
        """The user's own choice to show the preview; None follows the terminal's width."""
        self.console_after: tuple[str, str, str] | None = None
        """(host, uuid, name) of the domain whose console to open once the form closes:
        it was defined and started, has a serial console, and "Open its console" was on."""
        self._ready: tuple[bool, bool] | None = None

    # --- layout ------------------------------------------------------------------------------

    @staticmethod
    def _field(key: str, label: str, *widgets: Widget, hidden: bool = False) -> Vertical:
        return Vertical(
            Label(label),
            *widgets,
            Static(id=f"err-{key}", classes="nd-error -empty"),
            id=f"f-{key}",
            classes="nd-field -hidden" if hidden else "nd-field",
        )

    def compose(self) -> ComposeResult:
        host_options = [(Text(inert(h, one_line=True)), h) for h in self.hosts]
        with Vertical(id="nd-dialog", classes="dialog-frame"):
            with Horizontal(id="nd-body"):
                with VerticalScroll(id="nd-form"):
                    yield self._field("name", "Name", Input(placeholder="e.g. vm1", id="name"))
                    yield self._field(
                        "host",
                        "Host",
                        Select(host_options, allow_blank=False, value=self.host, id="host"),
                    )
                    with Horizontal(classes="nd-row"):
                        yield self._field(
                            "memory_mib", "Memory (MiB)", Input("1024", type="integer", id="memory")
                        )
                        yield self._field("vcpus", "vCPUs", Input("1", type="integer", id="vcpus"))
                    yield self._field(
                        "boot",
                        "Boot from",
                        _radio_set("boot", _BOOT_CHOICES),
                    )
                    yield self._field(
                        "iso_path", "ISO image", Select([], prompt="No ISO image", id="iso")
                    )
                    yield self._field(
                        "kernel",
                        "Kernel",
                        Input(placeholder="/var/lib/virtdeck/boot/vmlinuz", id="kernel"),
                        hidden=True,
                    )
                    yield self._field(
                        "initrd",
                        "Initrd (optional)",
                        Input(placeholder="/var/lib/virtdeck/boot/initrd.img", id="initrd"),
                        hidden=True,
                    )
                    yield self._field(
                        "cmdline",
                        "Kernel command line",
                        Input(placeholder="console=ttyS0 root=/dev/vda", id="cmdline"),
                        hidden=True,
                    )
                    yield self._field(
                        "disk",
                        "Disk",
                        _radio_set("disk", _DISK_CHOICES),
                    )
                    with Horizontal(classes="nd-row", id="new-disk-row"):
                        yield self._field(
                            "disk_size_gib",
                            "Size (GiB)",
                            Input("10", type="integer", id="disk-size"),
                        )
                        yield self._field(
                            "disk_format",
                            "Format",
                            Select(
                                [("qcow2", "qcow2"), ("raw", "raw")],
                                allow_blank=False,
                                value="qcow2",
                                id="disk-format",
                            ),
                        )
                    yield self._field(
                        "existing_disk_path",
                        "Disk image",
                        Select([], prompt="No disk image", id="existing-disk"),
                        hidden=True,
                    )
                    yield self._field(
                        "network",
                        "Network",
                        _radio_set("network", _NETWORK_CHOICES),
                    )
                    yield self._field(
                        "bridge",
                        "Host bridge",
                        Input(placeholder="br0", id="bridge"),
                        hidden=True,
                    )
                    with Horizontal(classes="nd-row"):
                        yield self._field("vnc", "VNC display", Switch(True, id="vnc"))
                        yield self._field("serial", "Serial console", Switch(True, id="serial"))
                    yield self._field(
                        "open_console",
                        "After Define and start",
                        Checkbox("Open its console", True, id="open-console", compact=True),
                    )
                    yield self._field(
                        "on_crash",
                        "When the guest crashes",
                        Select(
                            [(_CRASH_WORDS[a], a) for a in CRASH_ACTIONS],
                            allow_blank=False,
                            value="destroy",
                            id="on-crash",
                        ),
                    )
                with Vertical(id="nd-preview-box"):
                    yield Label("XML preview", classes="nd-heading")
                    with ScrollableContainer(id="nd-preview-scroll"):
                        yield Static(id="nd-preview")
            yield Static(id="nd-status", classes="dialog-status")
            with Horizontal(id="nd-buttons", classes="dialog-buttons"):
                yield Static(id="nd-keys", classes="keys")
                yield Button("Define", id="define", variant="primary", disabled=True)
                yield Button(
                    "Define and start", id="define-start", variant="success", disabled=True
                )
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#nd-dialog").border_title = "New domain"
        self.query_one("#nd-keys", Static).update(key_hints(self))
        self.name_input.focus()
        self._load(self.host)
        self.update_form()

    def on_resize(self, event: Resize) -> None:
        narrow = event.size.width < NARROW
        self.set_class(narrow, "-narrow")
        if self.preview_wanted is None:
            self.set_class(narrow, "-no-preview")

    def action_toggle_preview(self) -> None:
        """Show or hide the XML preview (hidden at first on narrow terminals)."""
        self.preview_wanted = self.has_class("-no-preview")
        self.set_class(not self.preview_wanted, "-no-preview")

    # --- host data ---------------------------------------------------------------------------

    def _load(self, host: str) -> None:
        self.names = None
        self.volumes = ()
        self.pool_path = None
        self.storage = False
        self.host_error = ""
        self._fill_volumes()
        self._read_host(host)

    @work(
        group="new-domain-host",
        exclusive=True,
        exit_on_error=False,
        description="read the host's domains and images",
    )
    async def _read_host(self, host: str) -> None:
        conn = self.hosts[host]
        try:
            names = frozenset(s.name for s in await conn.list_summaries())
            storage = "storage" in conn.capabilities
            volumes: list[VolumeInfo] = []
            pool_path = None
            if storage:
                pool_path = (await conn.pool_info()).path
                volumes = await conn.list_volumes()
        except VirtError as err:
            self.post_message(self.HostFailed(host, err.message))
            return
        self.post_message(self.HostLoaded(host, names, tuple(volumes), pool_path, storage))

    def on_new_domain_screen_host_loaded(self, message: HostLoaded) -> None:
        if message.host != self.host:
            return  # the user has chosen another host since
        self.names = message.names
        self.volumes = message.volumes
        self.pool_path = message.pool_path
        self.storage = message.storage
        self._fill_volumes()
        self.update_form()

    def on_new_domain_screen_host_failed(self, message: HostFailed) -> None:
        if message.host != self.host:
            return
        self.host_error = f"Cannot read {message.host}: {message.message}"
        self.update_form()

    def _fill_volumes(self) -> None:
        isos = [v for v in self.volumes if v.format == "iso"]
        disks = [v for v in self.volumes if v.format in ("qcow2", "raw")]
        for selector, found in (("#iso", isos), ("#existing-disk", disks)):
            select: Select[str] = self.query_one(selector, Select)
            current = select.value
            with self.prevent(Select.Changed):
                select.set_options([_volume_option(v) for v in found])
                paths = [v.path for v in found]
                if isinstance(current, str) and current in paths:
                    select.value = current
                elif paths and selector == "#iso":
                    select.value = paths[0]

    # --- reading the form --------------------------------------------------------------------

    def _pressed(self, selector: str) -> str:
        button = self.query_one(selector, RadioSet).pressed_button
        return "" if button is None or button.id is None else button.id

    def _select_value(self, selector: str) -> str:
        value = self.query_one(selector, Select).value
        return value if isinstance(value, str) else ""

    def read_spec(self) -> tuple[DomainSpec, dict[str, str]]:
        """The form's answers, and what cannot even be read (words in number fields)."""
        problems: dict[str, str] = {}

        def number(selector: str, key: str, sentence: str, fallback: int) -> int:
            value = _whole_number(self.query_one(selector, Input).value)
            if value is None:
                problems[key] = sentence
                return fallback
            return value

        memory = number("#memory", "memory_mib", "Write the memory in MiB, e.g. 1024.", 0)
        vcpus = number("#vcpus", "vcpus", "Write the number of vCPUs, e.g. 2.", 0)
        size = number("#disk-size", "disk_size_gib", "Write the size in GiB, e.g. 20.", 0)
        boot = _BOOTS.get(self._pressed("#boot"), "iso")
        # Booting from a disk image makes that image the disk.
        disk = "existing" if boot == "disk" else _DISKS.get(self._pressed("#disk"), "none")
        existing = self._select_value("#existing-disk")
        fmt: DiskFormat = "raw" if self._select_value("#disk-format") == "raw" else "qcow2"
        if disk == "existing":
            found = [v for v in self.volumes if v.path == existing]
            fmt = "raw" if found and found[0].format == "raw" else "qcow2"
        crash = self._select_value("#on-crash")
        spec = DomainSpec(
            name=self.name_input.value,
            memory_mib=memory,
            vcpus=vcpus,
            boot=boot,
            iso_path=self._select_value("#iso"),
            kernel=self.query_one("#kernel", Input).value.strip(),
            initrd=self.query_one("#initrd", Input).value.strip(),
            cmdline=self.query_one("#cmdline", Input).value.strip(),
            disk=disk,
            disk_size_gib=size,
            disk_format=fmt,
            existing_disk_path=existing,
            network=_NETWORKS.get(self._pressed("#network"), "user"),
            bridge=self.query_one("#bridge", Input).value.strip(),
            vnc=self.query_one("#vnc", Switch).value,
            serial=self.query_one("#serial", Switch).value,
            on_crash=_CRASH.get(crash, "destroy"),
            virt_type="kvm" if self.host in self.kvm_hosts else "qemu",
        )
        return spec, problems

    def evaluate(self) -> tuple[DomainSpec, dict[str, str]]:
        """The spec and every error in it, for the chosen host."""
        spec, problems = self.read_spec()
        errors = validate_spec(
            spec,
            self.names or (),
            existing_volumes=[v.name for v in self.volumes],
            allow_kvm=self.host in self.kvm_hosts,
        )
        errors.update(problems)
        if self.names is not None:
            formats = {v.format for v in self.volumes}
            if spec.disk == "new" and not self.storage:
                errors["disk"] = (
                    f"{self.host} has no image directory for new images; choose no disk."
                )
            if spec.boot == "iso" and "iso" not in formats:
                errors["iso_path"] = (
                    f"{self.host}'s image directory has no ISO images; add one there or boot "
                    "from something else."
                )
            if spec.disk == "existing" and not formats & {"qcow2", "raw"}:
                errors["existing_disk_path"] = (
                    f"{self.host}'s image directory has no disk images (.qcow2, .img, .raw)."
                )
        return spec, errors

    def _console_offered(self, spec: DomainSpec) -> bool:
        """Whether "Open its console" applies: a serial console, on a host that has them."""
        return spec.serial and "console" in self.hosts[self.host].capabilities

    def _disk_path(self, spec: DomainSpec) -> str | None:
        if spec.disk == "new":
            return f"{self.pool_path or '…'}/{new_disk_name(spec)}"
        if spec.disk == "existing":
            return spec.existing_disk_path or "…"
        return None

    # --- showing it --------------------------------------------------------------------------

    def _shown(self, key: str) -> bool:
        return key not in _TYPED or self.submitted or key in self.touched

    def update_form(self) -> None:
        """Bring visibility, errors, buttons and the preview up to date with the fields."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        spec, errors = self.evaluate()
        self.errors = errors
        for key, group in (
            ("iso_path", spec.boot == "iso"),
            ("kernel", spec.boot == "kernel"),
            ("initrd", spec.boot == "kernel"),
            ("cmdline", spec.boot == "kernel"),
            ("disk", spec.boot != "disk"),
            ("existing_disk_path", spec.disk == "existing"),
            ("bridge", spec.network == "bridge"),
            ("open_console", self._console_offered(spec)),
        ):
            self.query_one(f"#f-{key}").set_class(not group, "-hidden")
        self.query_one("#new-disk-row").display = spec.disk == "new"
        self.query_one("#f-existing_disk_path > Label", Label).update(
            "Boot disk image" if spec.boot == "disk" else "Disk image"
        )
        for error in self.query(".nd-error").results(Static):
            key = (error.id or "").removeprefix("err-")
            shown = [
                sentence
                for field, sentence in errors.items()
                if _ERROR_HOME.get(field, field) == key and self._shown(field)
            ]
            error.update(Text(inert(" ".join(shown))))
            error.set_class(not shown, "-empty")
        for key, selector in _TYPED.items():
            self.query_one(selector, Input).set_class(
                key in errors and self._shown(key), "-invalid"
            )
        self._show_status(errors)
        try:
            xml = build_domain_xml(spec, self._disk_path(spec))
        except ValueError:
            self.preview.update(Text("The preview appears once the fields are valid."))
        else:
            self.preview.update(highlight_xml(xml))
        ready = (not errors and self.names is not None and not self.busy, self.busy)
        for button_id in ("#define", "#define-start"):
            self.query_one(button_id, Button).disabled = not ready[0]
        self.query_one("#cancel", Button).disabled = self.busy
        self.query_one("#nd-form").disabled = self.busy
        if ready != self._ready:
            self._ready = ready
            self.refresh_bindings()

    def _show_status(self, errors: dict[str, str]) -> None:
        status = self.status
        if self.busy:
            message, error = f"Defining the domain on {self.host}…", False
        elif self.submit_error:
            message, error = self.submit_error, True
        elif self.host_error:
            message, error = self.host_error, True
        elif self.names is None:
            message, error = f"Reading {self.host}'s domains and images…", False
        else:
            hidden = [sentence for field, sentence in errors.items() if not self._shown(field)]
            message, error = (hidden[0] if hidden else ""), False
        status.update(Text(inert(message)))
        status.set_class(error, "-error")

    def schedule_update(self) -> None:
        """Update the form once the user pauses (every change calls this)."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE, self.update_form, name="new-domain-preview")

    # --- changes -----------------------------------------------------------------------------

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        if event.input.has_focus:
            for key, selector in _TYPED.items():
                if selector == f"#{event.input.id}":
                    self.touched.add(key)
        self.submit_error = ""
        self.schedule_update()

    @on(Select.Changed, "#host")
    def _host_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.host:
            self.host = event.value
            self.submit_error = ""
            self._load(self.host)
            self.update_form()

    @on(Select.Changed, "#iso, #existing-disk, #disk-format, #on-crash")
    @on(Switch.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        self.submit_error = ""
        self.schedule_update()

    @on(RadioSet.Changed)
    def _choice_changed(self) -> None:
        self.submit_error = ""
        self.update_form()

    # --- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "define":
            return True if self._ready is not None and self._ready[0] else None
        if action == "cancel":
            return None if self.busy else True
        return True

    @on(Button.Pressed, "#define")
    def _define_pressed(self) -> None:
        self.action_define(False)

    @on(Button.Pressed, "#define-start")
    def _define_start_pressed(self) -> None:
        self.action_define(True)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def action_define(self, start: bool) -> None:
        """Define the domain (and start it) if the form is valid; else show every error."""
        if self.busy:
            return
        self.submitted = True
        self.submit_error = ""
        self.update_form()
        if self.errors or self.names is None:
            return
        spec, _ = self.evaluate()
        self.busy = True
        self.update_form()
        self._submit(self.host, spec, start)

    @work(
        group="new-domain-submit",
        exclusive=True,
        exit_on_error=False,
        description="define the new domain",
    )
    async def _submit(self, host: str, spec: DomainSpec, start: bool) -> None:
        conn = self.hosts[host]
        created: VolumeInfo | None = None
        try:
            disk_path = None
            if spec.disk == "new":
                created = await conn.create_volume(
                    new_disk_name(spec), spec.disk_size_gib << 30, spec.disk_format
                )
                disk_path = created.path
            dom = await conn.define_xml(build_domain_xml(spec, disk_path))
        except (VirtError, ValueError) as err:
            message = str(err)
            if created is not None:
                try:
                    await conn.delete_volume(created.name)
                except VirtError as cleanup:
                    message += (
                        f" The new image {created.name} could not be removed again: "
                        f"{cleanup.message}"
                    )
            self.post_message(self.SubmitFailed(message))
            return
        start_error = None
        if start:
            try:
                await dom.start()
            except VirtError as err:
                start_error = err.message
        self.post_message(self.Defined(host, dom.name, start, start_error, dom.uuid))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Driver errors come back as messages; this catches the unexpected ones (which the
        # app reports too), so the form never stays stuck in "Defining…".
        if event.worker.group != "new-domain-submit" or not self.busy:
            return
        if event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.busy = False
            error = event.worker.error
            self.submit_error = (
                f"Defining failed: {type(error).__name__}: {error}"
                if error is not None
                else "Defining was cancelled."
            )
            self.update_form()

    def on_new_domain_screen_submit_failed(self, message: SubmitFailed) -> None:
        self.busy = False
        self.submit_error = message.message
        self.update_form()

    def on_new_domain_screen_defined(self, message: Defined) -> None:
        self.busy = False
        name = inert(message.name, one_line=True)
        host = inert(message.host, one_line=True)
        if message.start_error is not None:
            self.app.notify(
                f"{name} was defined on {host} but did not start: {message.start_error}",
                title="Defined, not started",
                severity="error",
                markup=False,
            )
        else:
            verb = "Defined and started" if message.started else "Defined"
            self.app.notify(f"{verb} {name} on {host}.", title="New domain", markup=False)
            spec, _ = self.read_spec()
            wanted = self.query_one("#open-console", Checkbox).value
            if message.started and wanted and self._console_offered(spec) and message.uuid:
                self.console_after = (message.host, message.uuid, message.name)
        self.dismiss((message.host, message.name))
