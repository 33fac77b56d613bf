"""The dispatch table: which function answers which AWS operation.

Handlers are plain functions marked with ``@operation("CreateModel")``. The mark only sets an
attribute; the table is built explicitly by :func:`collect` from the handler modules the app
names, so there is no registry filled at import time and ``grep 'operation("CreateModel")'``
finds the handler. A test checks every entry against the botocore model, and
``docs/api-coverage.md`` is generated from the same tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sageport.services.container import Services

Params = dict[str, Any]
Result = dict[str, Any]


@dataclass(frozen=True)
class RequestContext:
    """What a handler may know about the request besides its validated parameters."""

    services: Services
    region: str
    account_id: str
    access_key: str
    request_id: str


Handler = Callable[[RequestContext, Params], Result]
F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__sageport_operation__"


def operation(name: str) -> Callable[[F], F]:
    """Mark a function as the handler of the AWS operation ``name``."""

    def mark(fn: F) -> F:
        setattr(fn, _MARK, name)
        return fn

    return mark


def collect(*modules: ModuleType) -> dict[str, Handler]:
    """Build an operation → handler table from the marked functions of ``modules``."""
    table: dict[str, Handler] = {}
    for module in modules:
        for value in vars(module).values():
            name = getattr(value, _MARK, None)
            if name is None or not callable(value):
                continue
            if name in table and table[name] is not value:
                raise RuntimeError(f"operation {name} has two handlers")
            table[name] = value
    return table
