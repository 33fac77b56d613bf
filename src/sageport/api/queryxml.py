"""The AWS query protocol's wire form (STS, IAM), driven by botocore's models.

In: a form (``Action=GetRole&RoleName=...``, the body or the query string) checked against
the operation's input shape (required members; a string's length and pattern, as the
service's own validation reports them). Out: ``<{Op}Response><{Op}Result>`` holding the
members of the output shape (the model's ``resultWrapper``), lists as ``<member>`` items,
timestamps ISO-8601, then ``<ResponseMetadata>``; errors as ``<ErrorResponse>``. Handlers
return plain dicts keyed by the model's member names; this module is the one place that
knows how the query protocol spells them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree as ET

from botocore.model import OperationModel, Shape

from sageport.api.s3xml import fill, xml_safe
from sageport.errors import AwsError


class QueryAccessDenied(AwsError):
    """What query-protocol services (STS, IAM) call ``AccessDeniedException``."""

    code = "AccessDenied"
    status = 403


class QueryValidationError(AwsError):
    """What query-protocol services (IAM, STS) call a request that breaks the model."""

    code = "ValidationError"


def read_form(query: str, body: bytes | None) -> dict[str, str]:
    """The request's parameters: the form body and the query string (first value of each)."""
    form = parse_qs((body or b"").decode("utf-8", "replace"), keep_blank_values=True)
    form.update(parse_qs(query, keep_blank_values=True))
    return {name: values[0] for name, values in form.items()}


def parse_params(op: OperationModel, form: Mapping[str, str]) -> dict[str, Any]:
    """The top-level scalar members of ``op``'s input found in ``form``, validated.

    Only the flat string/number members the served operations have are read; a missing
    required member or a string outside its length or pattern is :class:`QueryValidationError`.
    """
    shape = op.input_shape
    params: dict[str, Any] = {}
    if shape is None:
        return params
    problems: list[str] = []
    for name in shape.required_members:
        if name not in form:
            problems.append(
                f"Value null at '{_camel(name)}' failed to satisfy constraint: "
                "Member must not be null"
            )
    for name, member in shape.members.items():
        if name not in form or member.type_name not in ("string", "integer", "long"):
            continue
        raw = form[name]
        problems += _check(member, raw, name)
        params[name] = int(raw) if member.type_name != "string" and raw.isdigit() else raw
    if problems:
        count = len(problems)
        raise QueryValidationError(
            f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems)
        )
    return params


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _check(shape: Shape, raw: str, name: str) -> list[str]:
    where = f"Value '{raw}' at '{_camel(name)}' failed to satisfy constraint: Member must"
    meta = shape.metadata
    if shape.type_name != "string":
        return [] if raw.lstrip("-").isdigit() else [f"{where} be a number"]
    if "min" in meta and len(raw) < meta["min"]:
        return [f"{where} have length greater than or equal to {meta['min']}"]
    if "max" in meta and len(raw) > meta["max"]:
        return [f"{where} have length less than or equal to {meta['max']}"]
    pattern = meta.get("pattern")
    if pattern and re.fullmatch(pattern, raw) is None:
        return [f"{where} satisfy regular expression pattern: {pattern}"]
    return []


def response_xml(
    op: OperationModel, namespace: str, result: Mapping[str, Any], request_id: str
) -> bytes:
    """``result`` as ``op``'s response document (members of the output shape only)."""
    root = ET.Element(f"{op.name}Response", xmlns=namespace)
    shape = op.output_shape
    if shape is not None:
        wrapper = shape.serialization.get("resultWrapper", f"{op.name}Result")
        fill(ET.SubElement(root, wrapper), shape, result)
    metadata = ET.SubElement(root, "ResponseMetadata")
    ET.SubElement(metadata, "RequestId").text = request_id
    return ET.tostring(root)


def error_xml(namespace: str, err: AwsError, code: str, request_id: str) -> bytes:
    """The query protocol's error document for ``err`` (under the ``code`` given)."""
    root = ET.Element("ErrorResponse", xmlns=namespace)
    error = ET.SubElement(root, "Error")
    ET.SubElement(error, "Type").text = "Sender" if err.status < 500 else "Receiver"
    ET.SubElement(error, "Code").text = code
    ET.SubElement(error, "Message").text = xml_safe(err.message)
    ET.SubElement(root, "RequestId").text = request_id
    return ET.tostring(root)
