"""Which S3 operation of the botocore model a request is, from its method, path and query.

:func:`sageport.api.s3.route` routes the operations sageport serves. This table knows every
operation of the model (``GET /{Bucket}?tagging`` is ``GetBucketTagging``, ``PUT`` with
``x-amz-copy-source`` and ``uploadId`` is ``UploadPartCopy`` ...), so a request for one that
is not served gets a ``NotImplemented`` that names it, instead of being misread as the plain
operation on the same path (``GET /b/k?attributes`` is not a GetObject).

A request matches an operation when the method agrees, the path has the same parts (none,
a bucket, a bucket and a key), and the sub-resource markers of the operation's ``requestUri``
(``?tagging``, ``?list-type=2``) and its required query and header members are present; the
most specific match wins, and of equals the one the model does not mark deprecated. A
sub-resource marker in the query is decisive even when a required member is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from botocore.model import ServiceModel


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    parts: int  # 0: service, 1: bucket, 2: bucket and key
    markers: Mapping[str, str | None]
    query: frozenset[str]
    headers: frozenset[str]
    deprecated: bool

    def addressed(self, method: str, parts: int, query: Mapping[str, str]) -> bool:
        """Method, path and sub-resource markers agree."""
        return (
            method == self.method
            and parts == self.parts
            and all(k in query and v in (None, query[k]) for k, v in self.markers.items())
        )

    def matches(self, method: str, parts: int, query: Mapping[str, str], headers: set[str]) -> bool:
        """... and the required query and header members are there too."""
        return (
            self.addressed(method, parts, query)
            and self.query <= query.keys()
            and self.headers <= headers
        )

    @property
    def specificity(self) -> tuple[int, int, int, bool]:
        return (len(self.markers), len(self.query), len(self.headers), not self.deprecated)


def _route(model: ServiceModel, name: str) -> Route:
    op = model.operation_model(name)
    path, _, marks = str(op.http.get("requestUri", "/")).partition("?")
    parts = 2 if "{Key+}" in path else 1 if "{Bucket}" in path else 0
    markers: dict[str, str | None] = {}
    for item in filter(None, marks.split("&")):
        key, sep, value = item.partition("=")
        markers[key] = value if sep else None
    query: set[str] = set()
    headers: set[str] = set()
    shape = op.input_shape
    if shape is not None:
        for member in shape.required_members:
            ser = shape.members[member].serialization
            wire = str(ser.get("name", member))
            if ser.get("location") == "querystring":
                query.add(wire)
            elif ser.get("location") == "header":
                headers.add(wire.lower())
    return Route(
        name, str(op.http["method"]), parts, markers, frozenset(query), frozenset(headers),
        bool(op.deprecated),
    )  # fmt: skip


class ModelRoutes:
    """Every operation of the S3 model as a :class:`Route`."""

    def __init__(self, model: ServiceModel) -> None:
        self._routes = [_route(model, name) for name in model.operation_names]

    def operation(
        self, method: str, bucket: str, key: str, query: Mapping[str, str], headers: set[str]
    ) -> str | None:
        """The model's operation for this request, or None when no operation matches."""
        parts = 2 if key else 1 if bucket else 0
        found = [r for r in self._routes if r.matches(method, parts, query, headers)]
        best = max(found, key=lambda r: r.specificity) if found else None
        # a sub-resource the request names wins even if a required member is missing (then
        # the operation is still the one meant: GET ?attributes is never a GetObject)
        marked = [r for r in self._routes if r.markers and r.addressed(method, parts, query)]
        if marked:
            closest = max(marked, key=lambda r: r.specificity)
            if best is None or len(closest.markers) > len(best.markers):
                return closest.name
        return best.name if best else None

    def has_subresource(self, name: str) -> bool:
        """Whether ``name`` is addressed by a query marker or a required copy-source header."""
        route = next(r for r in self._routes if r.name == name)
        return bool(route.markers) or "x-amz-copy-source" in route.headers
