"""Validate a decoded JSON request against its botocore input shape, as AWS does.

AWS reports every violation at once, in one message::

    2 validation errors detected: Value 'a b' at 'trainingJobName' failed to satisfy
    constraint: Member must satisfy regular expression pattern: ...; Value null at
    'roleArn' failed to satisfy constraint: Member must not be null

Member paths are lowerCamelCase and list items are ``.N.member`` (1-based), as in AWS's own
messages. Besides checking, the walk converts wire values into Python ones (timestamps →
aware ``datetime``, blobs → ``bytes``) so handlers never parse anything.

Beyond what the model states, every value a handler sees is one the rest of the server can
hold: strings are valid Unicode (no lone surrogates) without NUL characters (neither a
process environment, a path nor PostgreSQL can carry one), integers fit the model's Java
types (``integer`` 32 bits, ``long`` 64 bits), numbers are finite, and timestamps lie
between the years 1 and 9999 (:data:`EARLIEST`, :data:`LATEST`). Each of those is a
validation error naming the member, never a failure further in.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from sageport.errors import ValidationException

#: the range of integer types of the model (Java's ``int`` and ``long``)
INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
#: the timestamps a request may carry: a day inside ``datetime``'s range at both ends, so
#: converting one to any time zone or adding a day to it cannot overflow
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
#: longest value quoted in a message (AWS quotes whole values; a 1 MB one helps nobody)
SHOW_LIMIT = 256


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        text = f"<{type(value).__name__} of {len(value)}>"  # nested values can be deep
    else:
        text = value if isinstance(value, str) else repr(value)
    if len(text) > SHOW_LIMIT:
        text = text[:SHOW_LIMIT] + f"... ({len(text)} characters)"
    # escapes, so a lone surrogate or NUL in the value cannot break the message itself
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return f"'{text}'" if isinstance(value, str) else text


class Validator:
    """Checks values against shapes; compiled patterns are cached per instance."""

    def __init__(self) -> None:
        self._patterns: dict[str, re.Pattern[str] | None] = {}

    def validate(self, shape: StructureShape | None, params: Any) -> dict[str, Any]:
        """Return ``params`` converted to Python values, or raise ``ValidationException``."""
        if shape is None:
            return {}
        errors: list[str] = []
        if not isinstance(params, dict):
            raise ValidationException(
                "1 validation error detected: the request body must be a JSON object"
            )
        out = self._walk(shape, params, "", errors)
        if errors:
            n = len(errors)
            head = f"{n} validation error{'s' if n > 1 else ''} detected: "
            raise ValidationException(head + "; ".join(errors))
        assert isinstance(out, dict)
        return out

    def _pattern(self, pattern: str) -> re.Pattern[str] | None:
        if pattern not in self._patterns:
            try:
                # AWS patterns are Java regexes matched against the whole value.
                self._patterns[pattern] = re.compile(pattern, re.DOTALL)
            except re.error:
                self._patterns[pattern] = None
        return self._patterns[pattern]

    def _fail(self, errors: list[str], value: Any, path: str, constraint: str) -> None:
        if len(path) > SHOW_LIMIT or not path.isprintable():  # map keys are the user's text
            path = path[:SHOW_LIMIT].encode("unicode_escape").decode("ascii")
        errors.append(
            f"Value {_show(value)} at '{path}' failed to satisfy constraint: {constraint}"
        )

    def _walk(self, shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
        kind = shape.type_name
        if kind == "structure":
            return self._structure(shape, value, path, errors)
        if kind == "list":
            return self._list(shape, value, path, errors)
        if kind == "map":
            return self._map(shape, value, path, errors)
        return self._scalar(shape, value, path, errors)

    def _structure(self, shape: StructureShape, value: Any, path: str, errors: list[str]) -> Any:
        if not isinstance(value, dict):
            self._fail(errors, value, path, "Member must be a structure")
            return value
        out: dict[str, Any] = {}
        for name in shape.required_members:
            if value.get(name) is None:
                self._fail(errors, None, self._join(path, name), "Member must not be null")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None:
                # A newer client may send members our botocore does not know; like AWS's
                # JSON services, ignore them rather than fail the call.
                continue
            if member_value is None:
                continue
            out[name] = self._walk(member, member_value, self._join(path, name), errors)
        return out

    @staticmethod
    def _join(path: str, name: str) -> str:
        return f"{path}.{_camel(name)}" if path else _camel(name)

    def _list(self, shape: ListShape, value: Any, path: str, errors: list[str]) -> Any:
        if not isinstance(value, list):
            self._fail(errors, value, path, "Member must be a list")
            return value
        self._length(shape, value, len(value), path, errors)
        return [
            self._walk(shape.member, v, f"{path}.{i}.member", errors)
            for i, v in enumerate(value, 1)
        ]

    def _map(self, shape: MapShape, value: Any, path: str, errors: list[str]) -> Any:
        if not isinstance(value, dict):
            self._fail(errors, value, path, "Member must be a map")
            return value
        self._length(shape, value, len(value), path, errors)
        out = {}
        for k, v in value.items():
            self._scalar(shape.key, k, f"{path}.{k}.key", errors)
            out[k] = self._walk(shape.value, v, f"{path}.{k}.value", errors)
        return out

    def _length(self, shape: Shape, value: Any, length: int, path: str, errors: list[str]) -> None:
        meta = shape.metadata
        if "min" in meta and length < meta["min"]:
            self._fail(
                errors,
                value,
                path,
                f"Member must have length greater than or equal to {meta['min']}",
            )
        if "max" in meta and length > meta["max"]:
            self._fail(
                errors, value, path, f"Member must have length less than or equal to {meta['max']}"
            )

    def _scalar(self, shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
        kind = shape.type_name
        meta = shape.metadata
        if kind == "string":
            if not isinstance(value, str):
                self._fail(errors, value, path, "Member must be a string")
                return value
            self._length(shape, value, len(value), path, errors)
            if not _encodable(value):
                self._fail(errors, value, path, "Member must be valid Unicode (no lone surrogates)")
                return value
            if "\x00" in value:
                self._fail(errors, value, path, "Member must not contain NUL characters")
                return value
            if shape.enum and value not in shape.enum:
                constraint = f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"
                close = difflib.get_close_matches(value, shape.enum, n=3, cutoff=0.75)
                if close:
                    # AWS lists every value; for 300 instance types a suggestion helps more.
                    constraint += f" (did you mean {' or '.join(repr(c) for c in close)}?)"
                self._fail(errors, value, path, constraint)
            elif "s3)://" in meta.get("pattern", "") and not _s3_bucket_ok(value):
                # the model's pattern takes any bucket ("[^/]+"), newlines included; the
                # object store and every path built from it would not
                self._fail(errors, value, path, S3_BUCKET_RULE)
            elif "pattern" in meta:
                compiled = self._pattern(meta["pattern"])
                if compiled is not None and compiled.fullmatch(value) is None:
                    self._fail(
                        errors,
                        value,
                        path,
                        f"Member must satisfy regular expression pattern: {meta['pattern']}",
                    )
            return value
        if kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                self._fail(errors, value, path, "Member must be an integer")
                return value
            lo, hi = INT_RANGES[kind]
            self._range({"min": lo, "max": hi, **meta}, value, path, errors)
            return value
        if kind in ("float", "double"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._fail(errors, value, path, "Member must be a number")
                return value
            if not _finite(value):
                self._fail(errors, value, path, "Member must be a finite number")
                return value
            self._range(meta, value, path, errors)
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                self._fail(errors, value, path, "Member must be a boolean")
            return value
        if kind == "timestamp":
            return self._timestamp(value, path, errors)
        if kind == "blob":
            if not isinstance(value, str):
                self._fail(errors, value, path, "Member must be base64-encoded")
                return value
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                self._fail(errors, value, path, "Member must be base64-encoded")
                return value
        return value

    def _range(self, meta: dict[str, Any], value: float, path: str, errors: list[str]) -> None:
        if "min" in meta and value < meta["min"]:
            self._fail(
                errors,
                value,
                path,
                f"Member must have value greater than or equal to {meta['min']}",
            )
        if "max" in meta and value > meta["max"]:
            self._fail(
                errors, value, path, f"Member must have value less than or equal to {meta['max']}"
            )

    def _timestamp(self, value: Any, path: str, errors: list[str]) -> Any:
        parsed = _parse_time(value)
        if parsed is None:
            self._fail(
                errors,
                value,
                path,
                "Member must be a timestamp (epoch seconds or ISO 8601) between "
                f"{EARLIEST.isoformat()} and {LATEST.isoformat()}",
            )
            return value
        return parsed


#: bucket names S3 has ever accepted (today's rules, and the legacy ones of us-east-1)
_S3_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}")
S3_BUCKET_RULE = (
    "Member must be an S3 URI whose bucket name has 1 to 255 letters, digits, '.', '-' or '_'"
)


def _s3_bucket_ok(uri: str) -> bool:
    if not uri.startswith("s3://"):
        return True  # https:// URIs and other values: the pattern decides
    bucket = uri[5:].partition("/")[0]
    return _S3_BUCKET.fullmatch(bucket) is not None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _parse_time(value: Any) -> datetime | None:
    """``value`` as an aware UTC datetime within [EARLIEST, LATEST], or None."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:  # epoch seconds written as text, as some clients do
                return _parse_time(float(value))
            except ValueError:
                return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not _finite(value):
            return None
        lo, hi = (EARLIEST - _EPOCH).total_seconds(), (LATEST - _EPOCH).total_seconds()
        if not lo <= value <= hi:
            return None
        parsed = _EPOCH + timedelta(seconds=float(value))
    else:
        return None
    return parsed if EARLIEST <= parsed <= LATEST else None
