"""Rendering S3's XML documents and parsing the ones clients send, safely."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable
from typing import Any

from lxml import etree

from s3proxy.errors import MalformedXML
from s3proxy.names import XML_UNSAFE_RE, is_xml_safe

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


# An integer field (xs:int, xs:long) of a client's document: ASCII digits only, since
# str.isdigit() and int() also take "²" or "٣", and int() refuses over 4300 digits.
_INTEGER_RE = re.compile(r"(-?)0*([0-9]{1,18})")


def is_safe(text: str) -> bool:
    return is_xml_safe(text)


def safe_text(text: str) -> str:
    """``text`` with the characters XML cannot carry percent-encoded (as UTF-8), for
    echoing what a client sent (a key with a NUL, say) in an <Error> document."""
    return XML_UNSAFE_RE.sub(
        lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass")),
        text,
    )


def iso8601(timestamp: float) -> str:
    """S3's timestamp format, with milliseconds: 2017-08-29T15:36:03.613Z."""
    seconds, millis = divmod(int(timestamp * 1000), 1000)  # truncated, never rounded up
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=1024)
def _iso_seconds(seconds: int) -> str:
    # A listing's objects were mostly written within a few seconds of each other.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def element(tag: str, *children: Any) -> etree._Element:
    """``element("Bucket", ("Name", "x"), ...)``: children are elements, (tag, text)
    pairs (None text is skipped), or iterables of those."""
    node = etree.Element(tag)
    _append(node, children)
    return node


def _append(node: etree._Element, children: Iterable[Any]) -> None:
    for child in children:
        if child is None:
            continue
        if isinstance(child, etree._Element):
            node.append(child)
        elif isinstance(child, tuple):
            tag, text = child
            if text is None:
                continue
            sub = etree.SubElement(node, tag)
            if isinstance(text, bool):
                sub.text = "true" if text else "false"
            elif isinstance(text, etree._Element):
                sub.append(text)
            else:
                sub.text = str(text)
        else:
            _append(node, child)


def document(
    root_tag: str, *children: Any, namespace: bool = True, text: str | None = None
) -> bytes:
    nsmap: Any = {None: S3_NS} if namespace else None
    root = etree.Element(root_tag, nsmap=nsmap)
    root.text = text
    _append(root, children)
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return body


def parse(body: bytes, root_tag: str) -> etree._Element:
    """Parse a client's XML document; MalformedXML for anything unexpected, including
    DTDs (no entity is ever expanded or fetched)."""
    if not body.strip():
        raise MalformedXML()
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        raise MalformedXML() from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise MalformedXML()
    if local_name(root) != root_tag:
        raise MalformedXML()
    return root


def integer(text: str | None) -> int | None:
    """The value of an integer field (surrounding whitespace allowed), or None if it is
    not one (the caller answers MalformedXML, as S3's schema check does)."""
    if text is None:
        return None
    match = _INTEGER_RE.fullmatch(text.strip())
    return int(match.group(1) + match.group(2)) if match else None


def local_name(node: etree._Element) -> str:
    return etree.QName(node).localname


def children(node: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in node if isinstance(c.tag, str) and local_name(c) == name]


def child_text(node: etree._Element, name: str) -> str | None:
    found = children(node, name)
    if not found:
        return None
    return found[0].text or ""
