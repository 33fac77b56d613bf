"""Backends by name, imported lazily so that ``pip install sageport`` needs none of their extras."""

from __future__ import annotations

import importlib
from typing import Any, Final, cast

from sageport.backends.base import Backend

BACKENDS: Final = {
    "local": "sageport.backends.local:LocalBackend",
    "fake": "sageport.backends.fake:FakeBackend",
}
"""Name → ``module:class``. A Ray backend adds ``"ray": "sageport.backends.ray:RayBackend"``."""


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def get_backend(name: str, **kwargs: Any) -> Backend:
    """A new backend of kind ``name``, built with ``kwargs``; ValueError for unknown names."""
    target = BACKENDS.get(name)
    if target is None:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cast(Backend, cls(**kwargs))
