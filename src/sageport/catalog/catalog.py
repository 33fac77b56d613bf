"""The instance catalog: what an ``ml.*`` type promises (vCPUs, memory, accelerators, price).

The facts live in ``instances.csv`` beside this module (sources and date in its header), so that a
new instance family is a data change, not a code change. This module only parses the file into
typed rows and answers the questions the scheduler and ``sageport instances`` ask: "what is
``ml.g5.xlarge``?" and "which types have at least N GPUs of model M with G GB each, cheapest
first?". Nothing is read at import time: callers build a :class:`Catalog` with
:func:`load_catalog`.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import NamedTuple, TypeVar

from sageport.errors import ValidationException

#: Accelerator kinds used in the data file. Only ``gpu`` means an NVIDIA CUDA device that
#: discovery can see and the scheduler can hand out; ``neuron`` (Inferentia/Trainium) and
#: ``gaudi`` are accelerators sageport cannot provide.
ACCELERATOR_KINDS = frozenset({"gpu", "neuron", "gaudi", "none", "unknown"})

_DATA_FILE = "instances.csv"
_T = TypeVar("_T")


class UnknownInstanceType(ValidationException):
    """An instance type that has no catalog row; the message suggests the closest names."""


class InstanceType(NamedTuple):
    """One row of the catalog.

    ``vcpus`` and ``memory_gib`` are ``None`` only where no facts are published
    (``ml.geospatial.interactive``). Accelerator memory is per device, in the vendor's nominal GB.
    """

    name: str
    family: str
    vcpus: int | None
    memory_gib: float | None
    accelerator_kind: str
    accelerator_count: int
    accelerator_model: str | None
    accelerator_memory_gb: float | None
    price_per_hour: float | None
    price_basis: str | None
    uses: frozenset[str]

    @property
    def gpu_count(self) -> int:
        """CUDA GPUs this type promises; Neuron and Gaudi devices are not GPUs and count 0."""
        return self.accelerator_count if self.accelerator_kind == "gpu" else 0

    @property
    def gpu_model(self) -> str | None:
        return self.accelerator_model if self.accelerator_kind == "gpu" else None

    @property
    def gpu_memory_gb(self) -> float | None:
        return self.accelerator_memory_gb if self.accelerator_kind == "gpu" else None

    @property
    def total_gpu_memory_gb(self) -> float:
        return self.gpu_count * (self.gpu_memory_gb or 0.0)


class Catalog:
    """The loaded catalog: lookup by name and search by GPU requirements."""

    def __init__(self, rows: Iterable[InstanceType]) -> None:
        self._rows: dict[str, InstanceType] = {}
        for row in rows:
            if row.name in self._rows:
                raise ValueError(f"instance catalog lists {row.name} twice")
            self._rows[row.name] = row

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[InstanceType]:
        return iter(self._rows.values())

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def names(self) -> list[str]:
        return list(self._rows)

    def get(self, name: str) -> InstanceType:
        """The row for ``name``; an unknown name raises with the closest known names."""
        try:
            return self._rows[name]
        except KeyError:
            raise UnknownInstanceType(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The message for a name without a row, with a did-you-mean where one is close."""
        close = difflib.get_close_matches(name, self._rows, n=3, cutoff=0.6)
        message = f"Instance type {name!r} is not in the sageport instance catalog."
        if close:
            message += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        return message

    def gpu_models(self) -> list[str]:
        return sorted({r.gpu_model for r in self._rows.values() if r.gpu_model})

    def find(
        self,
        *,
        gpus: int | None = None,
        gpu_model: str | None = None,
        min_gpu_memory: float | None = None,
    ) -> list[InstanceType]:
        """Types with at least ``gpus`` GPUs, of ``gpu_model`` (case-insensitive), each with at
        least ``min_gpu_memory`` GB; cheapest first, types without a known price last.

        With no GPU criterion at all, every type matches. Ties on price go to the smaller type
        (fewer GPUs, then fewer vCPUs), which is what someone asking for "the cheapest that fits"
        means.
        """
        wanted_model = gpu_model.casefold() if gpu_model else None
        matches = []
        for row in self._rows.values():
            if gpus is not None and row.gpu_count < gpus:
                continue
            if wanted_model is not None and (row.gpu_model or "").casefold() != wanted_model:
                continue
            if min_gpu_memory is not None and (row.gpu_memory_gb or 0.0) < min_gpu_memory:
                continue
            matches.append(row)
        return sorted(matches, key=_cost_order)

    def cheapest(
        self,
        *,
        gpus: int | None = None,
        gpu_model: str | None = None,
        min_gpu_memory: float | None = None,
    ) -> InstanceType | None:
        """The cheapest priced type that fits, or ``None`` when no priced type fits."""
        for row in self.find(gpus=gpus, gpu_model=gpu_model, min_gpu_memory=min_gpu_memory):
            if row.price_per_hour is not None:
                return row
        return None


def _cost_order(row: InstanceType) -> tuple[float, int, int, str]:
    price = row.price_per_hour if row.price_per_hour is not None else math.inf
    return (price, row.gpu_count, row.vcpus or 0, row.name)


def load_catalog() -> Catalog:
    """Read the catalog shipped with the package."""
    text = resources.files("sageport.catalog").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    return Catalog(parse_catalog(text))


def parse_catalog(text: str) -> list[InstanceType]:
    """Parse the CSV text (``#`` lines are the header comment); a bad row raises ``ValueError``."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = []
    for number, record in enumerate(csv.DictReader(io.StringIO("\n".join(lines))), start=2):
        try:
            rows.append(_parse_row(record))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"instance catalog data row {number}: {exc}") from exc
    return rows


def _parse_row(record: dict[str, str]) -> InstanceType:
    kind = record["accelerator_kind"]
    if kind not in ACCELERATOR_KINDS:
        raise ValueError(f"accelerator_kind {kind!r} is not one of {sorted(ACCELERATOR_KINDS)}")
    return InstanceType(
        name=record["name"],
        family=record["family"],
        vcpus=_optional(record["vcpus"], int),
        memory_gib=_optional(record["memory_gib"], float),
        accelerator_kind=kind,
        accelerator_count=int(record["accelerator_count"] or 0),
        accelerator_model=record["accelerator_model"] or None,
        accelerator_memory_gb=_optional(record["accelerator_memory_gb"], float),
        price_per_hour=_optional(record["price_per_hour"], float),
        price_basis=record["price_basis"] or None,
        uses=frozenset(u for u in record["uses"].split(";") if u),
    )


def _optional(value: str, convert: Callable[[str], _T]) -> _T | None:
    return convert(value) if value else None
