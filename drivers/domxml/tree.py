"""Safe parsing, serialisation and small element helpers shared by the domain XML views.

Domain XML arrives from users and from remote peers, so the parser is configured to never
touch the network or the file system, never expand entities and never build huge trees;
a document that declares a DTD is refused outright.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence

from lxml import etree

from drivers.errors import InvalidXML

MAX_XML_BYTES: int = 4 << 20
"""The largest domain XML accepted (libvirt takes about 3 MB); real definitions are a few
kilobytes, and the bound keeps a huge input from costing the daemon its memory."""


def too_large(size: int, limit: str) -> str:
    """The sentence for a domain XML of ``size`` bytes over ``limit`` (e.g. '4 MiB')."""
    return (
        f"The domain XML is {size} bytes; the limit is {limit}. Real definitions are a few "
        "kilobytes, so remove what makes it this large (often a pasted log or image in "
        "<description> or <metadata>)."
    )


# XML's own whitespace. str.strip() would also eat characters such as U+2003 that are
# content, and a later re-indent would then silently delete them.
XML_SPACE = " \t\r\n"

_INDENT = "  "
_DOCTYPE_MESSAGE = (
    "The domain XML has a <!DOCTYPE> declaration; domain XML takes no DTD or entities, "
    "so remove the <!DOCTYPE …> part."
)
_SHOW_MAX = 40


def show(value: str) -> str:
    """``value`` quoted for an error message, shortened so a huge value cannot flood it."""
    if len(value) > _SHOW_MAX:
        value = value[:_SHOW_MAX] + "…"
    return repr(value)


def parse_tree(xml: str | bytes) -> etree._Element:
    """Parse untrusted domain XML into its root element; every failure is InvalidXML."""
    encoding: str | None
    if isinstance(xml, str):
        try:
            data = xml.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidXML(
                "The domain XML contains characters that are not valid Unicode (lone "
                "surrogates); send it as UTF-8 text."
            ) from None
        # A str is already decoded, so a declaration that names another encoding must
        # not make libxml2 decode it a second time.
        encoding = "utf-8"
    elif isinstance(xml, (bytes, bytearray, memoryview)):
        data = bytes(xml)
        encoding = None
    else:
        raise InvalidXML(
            f"The domain XML must be text or bytes, not {type(xml).__name__}; "
            "pass the document as a string."
        )
    if len(data) > MAX_XML_BYTES:
        raise InvalidXML(too_large(len(data), "4 MiB"))
    parser = etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_blank_text=False,
        strip_cdata=False,
        # collect_ids=False must not be added: with it, lxml 6 makes libxml2 open a
        # document's external DTD (a test with a named pipe catches that).
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as err:
        detail = (err.msg or "it could not be parsed").strip().rstrip(".")
        # libxml2's own words for these two point at its C API; say what to change.
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            raise InvalidXML(_DOCTYPE_MESSAGE) from None
        if detail.startswith("Excessive depth"):
            raise InvalidXML(
                "The domain XML nests elements more than 256 levels deep; domain XML "
                "needs a handful of levels, so flatten the document."
            ) from None
        raise InvalidXML(f"The domain XML is not well-formed: {detail}.") from None
    except (etree.LxmlError, ValueError, LookupError) as err:
        # lxml reports a few input problems (unknown encodings, odd bytes) outside
        # XMLSyntaxError; they are still the document's fault.
        raise InvalidXML(f"The domain XML could not be read: {err}.") from None
    if root is None:
        raise InvalidXML("The domain XML is empty; write a <domain> element.")
    # lxml-stubs do not declare DocInfo.doctype; it is '' when there is no <!DOCTYPE>.
    doctype: object = getattr(root.getroottree().docinfo, "doctype", "")
    if doctype or any(True for _ in root.iter(etree.Entity)):
        raise InvalidXML(_DOCTYPE_MESSAGE)
    return root


def to_text(root: etree._Element, verbatim: Sequence[etree._Element] = ()) -> str:
    """``root`` serialised with two-space indentation and no XML declaration.

    Elements in ``verbatim`` keep their inner whitespace byte for byte. The tree itself
    is not changed: indentation is applied to a copy.
    """
    clone = copy.deepcopy(root)
    keep = {_path_of(root, element) for element in verbatim}
    _indent(clone, 0, (), keep)
    clone.tail = None
    return etree.tostring(clone, encoding="unicode") + "\n"


def _path_of(root: etree._Element, element: etree._Element) -> tuple[int, ...]:
    """The child indexes leading from ``root`` to ``element``, to find it in a copy."""
    path: list[int] = []
    node = element
    while node is not root:
        parent = node.getparent()
        if parent is None:
            return ()
        path.append(parent.index(node))
        node = parent
    return tuple(reversed(path))


def _blank(text: str | None) -> bool:
    return text is None or not text.strip(XML_SPACE)


def _indent(
    element: etree._Element,
    depth: int,
    path: tuple[int, ...],
    keep: set[tuple[int, ...]],
) -> None:
    children = list(element)
    if not children or (path and path in keep):
        return
    inner = "\n" + _INDENT * (depth + 1)
    if _blank(element.text):
        element.text = inner
    for index, child in enumerate(children):
        if isinstance(child.tag, str):
            _indent(child, depth + 1, (*path, index), keep)
        if _blank(child.tail):
            child.tail = inner
    if _blank(children[-1].tail):
        children[-1].tail = "\n" + _INDENT * depth


def children(parent: etree._Element, tag: str) -> list[etree._Element]:
    """The direct children named ``tag`` (no namespace)."""
    return [child for child in parent if child.tag == tag]


def single(parent: etree._Element, tag: str, where: str) -> etree._Element | None:
    """The one child named ``tag``, None if absent; InvalidXML if there are several."""
    found = children(parent, tag)
    if len(found) > 1:
        raise InvalidXML(f"{where} has {len(found)} <{tag}> elements; write just one <{tag}>.")
    return found[0] if found else None


def leaf_text(element: etree._Element, where: str) -> str:
    """The text of an element that must hold only text (no children, not even comments)."""
    if len(element):
        raise InvalidXML(
            f"{where} must contain only text; remove the elements or comments inside it."
        )
    return element.text or ""


def insert_ordered(parent: etree._Element, new: etree._Element, order: Sequence[str]) -> None:
    """Insert ``new`` among ``parent``'s children where ``order`` (libvirt's) puts it."""
    rank = order.index(str(new.tag))
    after: etree._Element | None = None
    before: etree._Element | None = None
    for child in parent:
        if not isinstance(child.tag, str) or child.tag not in order:
            continue
        if order.index(child.tag) <= rank:
            after = child
        elif before is None:
            before = child
    if after is not None:
        after.addnext(new)
    elif before is not None:
        before.addprevious(new)
    else:
        parent.append(new)


ABS_PATH_RE = re.compile(r"/[^\x00-\x1f\x7f]*")


def check_path(value: str | None, where: str, example: str) -> str:
    """An absolute path without control characters, or InvalidXML naming ``where``."""
    if value is None or value == "":
        raise InvalidXML(f"{where} needs a path; write e.g. {example}.")
    if not ABS_PATH_RE.fullmatch(value):
        raise InvalidXML(f"{where}: {show(value)} is not an absolute path; write e.g. {example}.")
    return value
