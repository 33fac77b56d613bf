"""Shape a handler's result dict into the wire form of an output shape.

Only members of the output shape survive, so a handler may return a resource's stored spec
plus runtime state and the shape decides what goes out (this is how a pass-through API
field needs no code). Timestamps become epoch seconds (JSON protocols) and blobs base64.
"""

from __future__ import annotations

import base64
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from sageport.domain.times import to_datetime


def to_json(shape: Shape | None, value: Any) -> Any:
    """The JSON-ready form of ``value`` under ``shape`` (``None`` members dropped)."""
    if shape is None:
        return {}
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            return {}
        out = {}
        for name, member in shape.members.items():
            v = value.get(name)
            if v is not None:
                out[name] = to_json(member, v)
        return out
    if kind == "list":
        assert isinstance(shape, ListShape)
        return [to_json(shape.member, v) for v in value]
    if kind == "map":
        assert isinstance(shape, MapShape)
        return {str(k): to_json(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return to_datetime(value).timestamp()
    if kind == "blob":
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return base64.b64encode(raw).decode()
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "boolean":
        return bool(value)
    return value
