"""REST-XML for S3, driven by botocore's s3 model: request → params dict, result dict → response.

Handlers receive plain dicts keyed by the model's member names (``Bucket``, ``Key``,
``MaxKeys``, ``Metadata`` ...) and return plain dicts; this module is the one place that
knows which member travels as a URI part, a query parameter, a header, a header prefix map or
the XML payload, and how each type is spelled on the wire (ISO-8601 in XML, RFC 1123 in
headers). XML bodies sent to us are parsed against the input payload shape the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from xml.etree import ElementTree as ET

from botocore.model import ListShape, MapShape, Shape, StructureShape

from sageport.errors import InvalidArgument, MalformedXML

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"

#: S3's response root elements; the model names output shapes, not their XML roots
ROOT_ELEMENTS = {
    "ListBuckets": "ListAllMyBucketsResult",
    "ListObjectsV2": "ListBucketResult",
    "ListObjects": "ListBucketResult",
    "DeleteObjects": "DeleteResult",
    "CreateMultipartUpload": "InitiateMultipartUploadResult",
    "CompleteMultipartUpload": "CompleteMultipartUploadResult",
    "ListParts": "ListPartsResult",
    "ListMultipartUploads": "ListMultipartUploadsResult",
}


# -- input ----------------------------------------------------------------------------------


def _scalar_in(shape: Shape, raw: str, where: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(raw)
        if kind == "boolean":
            return raw.lower() == "true"
        if kind == "timestamp":
            try:
                return parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"Invalid value {raw!r} for {where}") from None
    return raw


def parse_params(
    shape: StructureShape | None,
    uri: Mapping[str, str],
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """The members of ``shape`` found in the URI, query string and headers (lower-cased)."""
    params: dict[str, Any] = {}
    if shape is None:
        return params
    for name, member in shape.members.items():
        loc = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if loc == "uri":
            if name in uri:
                params[name] = uri[name]
        elif loc == "querystring" and wire in query:
            params[name] = _scalar_in(member, query[wire], wire)
        elif loc == "header" and wire.lower() in headers:
            params[name] = _scalar_in(member, headers[wire.lower()], wire)
        elif loc == "headers":
            prefix = wire.lower()
            found = {k[len(prefix) :]: v for k, v in headers.items() if k.startswith(prefix)}
            if found:
                params[name] = found
    return params


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _from_xml(shape: Shape, elem: ET.Element) -> Any:
    if isinstance(shape, StructureShape):
        out: dict[str, Any] = {}
        children = list(elem)
        for name, member in shape.members.items():
            wire = member.serialization.get("name", name)
            if isinstance(member, ListShape) and member.serialization.get("flattened"):
                items = [c for c in children if _local(c.tag) == wire]
                if items:
                    out[name] = [_from_xml(member.member, c) for c in items]
                continue
            found = next((c for c in children if _local(c.tag) == wire), None)
            if found is not None:
                out[name] = _from_xml(member, found)
        return out
    if isinstance(shape, ListShape):
        item = shape.member.serialization.get("name", "member")
        return [_from_xml(shape.member, c) for c in elem if _local(c.tag) == item]
    return _scalar_in(shape, (elem.text or "").strip(), elem.tag)


def parse_xml(shape: Shape, body: bytes) -> Any:
    """``body`` parsed as the payload ``shape``; anything unparsable is ``MalformedXML``."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedXML() from None
    return _from_xml(shape, root)


# -- output ---------------------------------------------------------------------------------


def iso8601(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


#: characters XML 1.0 cannot carry at all, not even as character references
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` with the characters XML cannot hold percent-encoded, so a document that
    mentions a hostile name (a key or bucket with a NUL in it) still parses."""
    return _NOT_XML.sub(
        lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogatepass")), text
    )


def _text(shape: Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp" and isinstance(value, datetime):
        return iso8601(value)
    return xml_safe(str(value))


def _append(parent: ET.Element, tag: str, shape: Shape, value: Any) -> None:
    if isinstance(shape, ListShape) and shape.serialization.get("flattened"):
        for item in value:
            _append(parent, tag, shape.member, item)
        return
    elem = ET.SubElement(parent, tag)
    fill(elem, shape, value)


def fill(elem: ET.Element, shape: Shape, value: Any) -> None:
    """``value``'s body members under ``elem``, as ``shape`` names and spells them; the REST-XML
    (S3) and query (STS, IAM) protocols share this form (maps only occur in the latter)."""
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            v = value.get(name)
            if v is None or member.serialization.get("location"):
                continue
            _append(elem, member.serialization.get("name", name), member, v)
    elif isinstance(shape, ListShape):
        item = shape.member.serialization.get("name", "member")
        for v in value:
            _append(elem, item, shape.member, v)
    elif isinstance(shape, MapShape):
        for k, v in value.items():
            entry = ET.SubElement(elem, "entry")
            _append(entry, shape.key.serialization.get("name", "key"), shape.key, k)
            _append(entry, shape.value.serialization.get("name", "value"), shape.value, v)
    else:
        elem.text = _text(shape, value)


def to_xml(root: str, shape: Shape, value: Mapping[str, Any]) -> bytes:
    """``value`` as an S3 XML document rooted at ``root`` (body members of ``shape`` only)."""
    elem = ET.Element(root, xmlns=S3_NS)
    fill(elem, shape, value)
    # us-ascii output (non-ASCII as character references) never carries its own declaration
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(elem)


def error_xml(code: str, message: str, extra: Mapping[str, str]) -> bytes:
    elem = ET.Element("Error")
    ET.SubElement(elem, "Code").text = code
    ET.SubElement(elem, "Message").text = xml_safe(message)
    for name, value in extra.items():
        ET.SubElement(elem, name).text = xml_safe(value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(elem)


def to_headers(shape: StructureShape | None, value: Mapping[str, Any]) -> dict[str, str]:
    """The header members of ``value`` (and ``x-amz-meta-*`` maps) as response headers."""
    out: dict[str, str] = {}
    if shape is None:
        return out
    for name, member in shape.members.items():
        v = value.get(name)
        loc = member.serialization.get("location")
        if v is None or loc not in ("header", "headers"):
            continue
        wire = member.serialization.get("name", name)
        if loc == "headers":
            out.update({f"{wire}{k}": str(x) for k, x in v.items()})
        elif isinstance(v, datetime):
            out[wire] = format_datetime(v.astimezone(UTC), usegmt=True)
        elif isinstance(v, bool):
            out[wire] = "true" if v else "false"
        else:
            out[wire] = str(v)
    return out
