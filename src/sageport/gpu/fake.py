"""A described GPU inventory (``SAGEPORT_FAKE_GPUS``) for tests and demos on hosts without GPUs.

Accepted specs, items separated by commas::

    0                       no GPUs
    4                       four 80 GB "Fake GPU" devices
    4xA100-80GB             four A100s with 80 GB each
    2xT4-16GB,2xA10G-24GB   a mix, numbered in the order given
    H100                    one H100 (memory from the model's usual size; 1x is implied)

The scheduler then allocates exactly as it would on such a host; only sampling is inert (fake
devices are always idle).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sageport.gpu.inventory import GpuDevice, GpuInventory, GpuSample

FAKE_SPEC_FORMS = "'0', '4', '4xA100-80GB', '2xT4-16GB,2xA10G-24GB' or 'H100'"

_DEFAULT_MODEL = "Fake GPU"
_DEFAULT_MEMORY_GB = 80
_MAX_DEVICES = 256

#: Nominal memory (GB) of models sold in one size, so that "2xL4" needs no "-24GB".
_KNOWN_MEMORY_GB = {
    "K80": 12, "T4": 16, "T4G": 16, "A10G": 24, "A10": 24, "L4": 24, "L40S": 48, "H100": 80,
    "H200": 141, "B200": 179, "B300": 268, "RTX PRO 6000": 96,
}  # fmt: skip
#: Compute capability by model, so fakes look like the real device to code that checks it.
_CAPABILITY = {
    "K80": (3, 7), "V100": (7, 0), "T4": (7, 5), "T4G": (7, 5), "A100": (8, 0), "A10G": (8, 6),
    "A10": (8, 6), "L4": (8, 9), "L40S": (8, 9), "H100": (9, 0), "H200": (9, 0), "B200": (10, 0),
    "B300": (10, 3), "RTX PRO 6000": (12, 0),
}  # fmt: skip

_ITEM = re.compile(
    r"""^(?:(?P<count>\d+)\s*[xX\u00d7]\s*)?          # 4x   (optional; 1 when absent)
        (?P<model>[A-Za-z][A-Za-z0-9 ]*?)          # A100
        (?:\s*-\s*(?P<memory>\d+(?:\.\d+)?)\s*GB)? # -80GB (optional for known models)
        $""",
    re.VERBOSE | re.IGNORECASE,
)


class FakeDiscovery:
    """Returns the inventory it was built with; every device is idle."""

    def __init__(self, inventory: GpuInventory) -> None:
        self._inventory = inventory

    @classmethod
    def from_spec(cls, spec: str) -> FakeDiscovery:
        """Build from a ``SAGEPORT_FAKE_GPUS`` value; a spec that does not parse raises
        ``ValueError`` naming the accepted forms."""
        return cls(parse_fake_spec(spec))

    def discover(self) -> GpuInventory:
        return self._inventory

    def sample(self, indices: Iterable[int]) -> list[GpuSample]:
        known = {d.index: d for d in self._inventory.devices}
        return [GpuSample(i, 0, 0, 0) for i in indices if i in known]


def parse_fake_spec(spec: str) -> GpuInventory:
    """The inventory ``spec`` describes (see the module docstring for the forms)."""
    text = spec.strip()
    if text.isdigit():
        count = int(text)
        _check_count(spec, count)
        devices = [_device(i, _DEFAULT_MODEL, _DEFAULT_MEMORY_GB) for i in range(count)]
    else:
        devices = []
        for item in text.split(","):
            count, model, memory_gb = _parse_item(spec, item.strip())
            for _ in range(count):
                devices.append(_device(len(devices), model, memory_gb))
        _check_count(spec, len(devices))
    reason = None if devices else f"SAGEPORT_FAKE_GPUS={spec!r} describes no GPUs"
    return GpuInventory(
        devices=tuple(devices),
        driver_version="fake",
        cuda_driver_version=None,
        reason=reason,
        fake=True,
    )


def _parse_item(spec: str, item: str) -> tuple[int, str, float]:
    match = _ITEM.match(item)
    if not item or match is None:
        raise _bad(spec, f"{item!r} is not a GPU description")
    count = int(match["count"]) if match["count"] is not None else 1
    if count < 1:
        raise _bad(spec, f"{item!r} asks for {count} GPUs; leave the item out instead")
    model = _canonical_model(match["model"])
    if match["memory"] is not None:
        memory = float(match["memory"])
        if memory <= 0:
            raise _bad(spec, f"{item!r} gives a GPU no memory")
    elif model in _KNOWN_MEMORY_GB:
        memory = _KNOWN_MEMORY_GB[model]
    else:
        raise _bad(spec, f"{item!r} needs its memory, e.g. '{count}x{model}-80GB'")
    return count, model, memory


def _canonical_model(raw: str) -> str:
    words = raw.split()
    upper = " ".join(words).upper()
    return upper if upper in _CAPABILITY or upper in _KNOWN_MEMORY_GB else " ".join(words)


def _device(index: int, model: str, memory_gb: float) -> GpuDevice:
    name = model if model == _DEFAULT_MODEL else f"NVIDIA {model}"
    return GpuDevice(
        index=index,
        uuid=f"GPU-fa4e0000-0000-4000-8000-{index:012x}",
        name=f"{name} {memory_gb:g}GB",
        memory_mib=round(memory_gb * 1024),
        compute_capability=_CAPABILITY.get(model.upper(), (9, 0)),
        pci_bus_id=f"00000000:{index + 1:02X}:00.0",
    )


def _check_count(spec: str, count: int) -> None:
    if count > _MAX_DEVICES:
        raise _bad(spec, f"{count} GPUs is more than the {_MAX_DEVICES} a fake host may have")


def _bad(spec: str, why: str) -> ValueError:
    return ValueError(f"SAGEPORT_FAKE_GPUS={spec!r} does not parse: {why}. Use {FAKE_SPEC_FORMS}.")
