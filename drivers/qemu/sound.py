"""``<sound>`` cards and ``<audio>`` backends, as libvirt 9.0 writes them for QEMU 7.2.

Every ``<audio id='N'>`` becomes ``-audiodev`` ``audioN``; the backends built are those a
daemon can use on any host: ``none`` (the card exists, its sound goes nowhere) and
``file`` (QEMU's ``wav`` driver records into the file). Backends that need a sound server
or the host's sound devices (pulseaudio, alsa, spice, …) are refused at define time.
A sound card plays into the backend its ``<audio id>`` child names, else the first.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from drivers.domxml.tree import children, show

AUDIO_TYPES = ("none", "file")
_HDA = {"ich6": "intel-hda", "ich9": "ich9-intel-hda"}
_PLAIN_PCI = {"ac97": "AC97", "es1370": "ES1370"}
SOUND_MODELS = (*_HDA, *_PLAIN_PCI, "usb", "sb16")
_CODECS = {"duplex": "hda-duplex", "micro": "hda-micro", "output": "hda-output"}


def sound_nodes(devices: etree._Element | None) -> list[etree._Element]:
    return [] if devices is None else children(devices, "sound")


def audio_nodes(devices: etree._Element | None) -> list[etree._Element]:
    return [] if devices is None else children(devices, "audio")


def refused_sound(devices: etree._Element | None) -> list[str]:
    """One sentence per ``<sound>`` / ``<audio>`` setting virtdeck does not build."""
    problems: list[str] = []
    ids = set()
    for node in audio_nodes(devices):
        kind = node.get("type") or ""
        audio_id = node.get("id") or ""
        where = f"<audio id={show(audio_id)} type={show(kind)}>"
        if not audio_id.isdigit() or int(audio_id) < 1:
            problems.append(f"{where}: id= must be a number from 1; write <audio id='1' …>.")
        ids.add(audio_id)
        if kind not in AUDIO_TYPES:
            problems.append(
                f"<audio type={show(kind)}>: this backend needs a sound server or the host's "
                "sound devices, which virtdeck's daemon does not use; write <audio id='1' "
                "type='none'/> (a silent card) or type='file' path='/…/guest.wav' (a recording)."
            )
        elif kind == "file" and not (node.get("path") or "").startswith("/"):
            problems.append(
                f"{where}: a file backend needs an absolute path=, e.g. "
                "<audio id='1' type='file' path='/var/lib/virtdeck/guest.wav'/>."
            )
        if any(isinstance(child.tag, str) for child in node):
            problems.append(
                f"{where}: <input>/<output> settings of an audio backend are not "
                "implemented; remove them."
            )
    for index, node in enumerate(sound_nodes(devices)):
        model = node.get("model") or ""
        where = f"<sound model={show(model)}>"
        if model not in SOUND_MODELS:
            problems.append(
                f"{where}: this sound card is not implemented; write model='ich9', 'ich6', "
                "'ac97', 'es1370', 'usb' or 'sb16'."
            )
            continue
        for child in node:
            if not isinstance(child.tag, str) or child.tag in ("address", "alias"):
                continue
            if child.tag == "codec":
                if model not in _HDA:
                    problems.append(f"{where}: only ich6/ich9 cards have <codec>s; remove it.")
                elif child.get("type") not in _CODECS:
                    problems.append(
                        f"{where} <codec type={show(child.get('type') or '')}>: write "
                        "type='duplex', 'micro' or 'output'."
                    )
            elif child.tag == "audio":
                if (child.get("id") or "") not in ids:
                    problems.append(
                        f"<sound> #{index + 1} <audio id={show(child.get('id') or '')}>: the "
                        "domain has no <audio> backend with that id; add one."
                    )
            else:
                problems.append(f"{where} <{child.tag}>: not implemented; remove it.")
    return problems


def audiodevs(devices: etree._Element | None, needed: bool) -> list[dict[str, Any]]:
    """The ``-audiodev`` objects: one per ``<audio>``; an implicit ``none`` backend
    (libvirt's ``<audio id='1' type='none'/>``) when ``needed`` and the XML has none."""
    out: list[dict[str, Any]] = []
    for node in audio_nodes(devices):
        props: dict[str, Any] = {"id": f"audio{node.get('id')}"}
        if node.get("type") == "file":
            props["driver"] = "wav"
            props["path"] = node.get("path")
        else:
            props["driver"] = "none"
        out.append(props)
    if not out and needed:
        out.append({"id": "audio1", "driver": "none"})
    return out


def first_audio(devices: etree._Element | None) -> str:
    nodes = audio_nodes(devices)
    return f"audio{nodes[0].get('id')}" if nodes else "audio1"


def sound_devices(
    node: etree._Element, index: int, default_audio: str, placement: dict[str, Any]
) -> list[dict[str, Any]]:
    """The ``-device`` objects of ``<sound>`` #``index`` (the card, then its codecs);
    ``placement`` is its PCI (bus/addr) or USB (bus/port) part."""
    model = node.get("model") or ""
    child = node.find("audio")
    audio = f"audio{child.get('id')}" if child is not None else default_audio
    card_id = f"sound{index}"
    if model in _HDA:
        card: dict[str, Any] = {"driver": _HDA[model], "id": card_id, **placement}
        codecs = [c.get("type") or "duplex" for c in children(node, "codec")] or ["duplex"]
        out = [card]
        for cad, codec in enumerate(codecs):
            out.append(
                {
                    "driver": _CODECS[codec],
                    "id": f"{card_id}-codec{cad}",
                    "bus": f"{card_id}.0",
                    "cad": cad,
                    "audiodev": audio,
                }
            )
        return out
    driver = _PLAIN_PCI.get(model) or ("usb-audio" if model == "usb" else "sb16")
    return [{"driver": driver, "id": card_id, "audiodev": audio, **placement}]
