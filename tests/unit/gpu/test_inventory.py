"""GPU discovery: the fake-inventory spec, choosing a discovery, and NVML on a GPU-less host."""

from __future__ import annotations

from pathlib import Path

import pytest

from sageport.gpu import (
    FakeDiscovery,
    GpuDevice,
    NvmlDiscovery,
    discovery_from_env,
    parse_fake_spec,
)


def test_a_bare_count_means_80gb_fake_gpus() -> None:
    inventory = parse_fake_spec("4")
    assert inventory.fake
    assert [d.index for d in inventory.devices] == [0, 1, 2, 3]
    assert {d.memory_mib for d in inventory.devices} == {80 * 1024}
    assert inventory.devices[0].name.startswith("Fake GPU")
    assert len({d.uuid for d in inventory.devices}) == 4
    assert inventory.reason is None


def test_model_and_memory() -> None:
    inventory = parse_fake_spec("4xA100-80GB")
    assert len(inventory) == 4
    device = inventory.devices[0]
    assert device.matches_model("A100")
    assert not device.matches_model("A10G")
    assert device.memory_gib == 80
    assert device.compute_capability == (8, 0)


def test_mixed_spec_numbers_devices_in_order() -> None:
    inventory = parse_fake_spec("2xT4-16GB, 2xA10G-24GB")
    assert [d.index for d in inventory.devices] == [0, 1, 2, 3]
    assert [d.matches_model("T4") for d in inventory.devices] == [True, True, False, False]
    assert [d.memory_mib for d in inventory.devices] == [16384, 16384, 24576, 24576]


def test_known_models_need_no_memory() -> None:
    inventory = parse_fake_spec("h100,2xL4")
    assert [d.memory_mib for d in inventory.devices] == [81920, 24576, 24576]
    assert inventory.devices[1].matches_model("L4")
    assert not inventory.devices[1].matches_model("L40S")


def test_zero_is_an_empty_inventory_with_a_reason() -> None:
    inventory = parse_fake_spec("0")
    assert inventory.empty
    assert inventory.reason is not None
    assert "SAGEPORT_FAKE_GPUS" in inventory.reason


@pytest.mark.parametrize(
    "spec", ["", "four", "4x", "-1", "2xT4-16GB,,1", "4xA100", "0xT4", "2xT4-0GB", "1000", "4x:"]
)
def test_bad_specs_show_the_accepted_forms(spec: str) -> None:
    with pytest.raises(ValueError, match="does not parse") as info:
        parse_fake_spec(spec)
    assert "4xA100-80GB" in str(info.value)


def test_fake_discovery_returns_its_inventory_and_idle_samples() -> None:
    discovery = FakeDiscovery.from_spec("2")
    assert len(discovery.discover()) == 2
    samples = discovery.sample([0, 1, 5])
    assert [s.index for s in samples] == [0, 1]
    assert samples[0].utilization_percent == 0


def test_discovery_from_env() -> None:
    assert isinstance(discovery_from_env({}), NvmlDiscovery)
    assert isinstance(discovery_from_env({"SAGEPORT_FAKE_GPUS": " "}), NvmlDiscovery)
    fake = discovery_from_env({"SAGEPORT_FAKE_GPUS": "2xT4-16GB"})
    assert isinstance(fake, FakeDiscovery)
    assert len(fake.discover()) == 2
    with pytest.raises(ValueError, match="4xA100-80GB"):
        discovery_from_env({"SAGEPORT_FAKE_GPUS": "lots"})


def test_model_matching_uses_whole_words() -> None:
    device = GpuDevice(0, "GPU-x", "NVIDIA RTX PRO 6000 Blackwell Server Edition", 97887, (12, 0))
    assert device.matches_model("RTX PRO 6000")
    assert device.matches_model("rtx pro 6000")
    assert device.matches_model("RTX")
    assert not device.matches_model("RTX PRO 600")
    assert not device.matches_model("")
    assert GpuDevice(0, "GPU-y", "Tesla V100-SXM2-16GB", 16160, (7, 0)).matches_model("V100")


@pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="this host has an NVIDIA driver")
def test_nvml_on_a_host_without_gpus_is_empty_with_a_reason() -> None:
    discovery = NvmlDiscovery()
    inventory = discovery.discover()
    assert inventory.empty
    assert not inventory.fake
    assert inventory.reason
    assert discovery.sample([0, 1]) == []


class _NvmlError(Exception):
    pass


def _fake_pynvml(v2: bool) -> object:
    """The two memory readings of NVML: v1 counts the driver's reservation as used."""
    from types import SimpleNamespace

    def memory_info(handle: object, version: object = None) -> SimpleNamespace:
        if version is not None and not v2:
            raise TypeError("nvmlDeviceGetMemoryInfo() got an unexpected keyword 'version'")
        used = 2 * 2**20 if version is not None else 514 * 2**20  # idle H100: ~0 vs 512 MiB
        return SimpleNamespace(used=used, total=80 * 2**30)

    return SimpleNamespace(
        NVMLError=_NvmlError, nvmlMemory_v2=0x2000028, nvmlDeviceGetMemoryInfo=memory_info
    )


def test_sampled_memory_leaves_out_what_the_driver_reserves() -> None:
    from sageport.gpu.nvml import _memory_used

    assert _memory_used(_fake_pynvml(v2=True), object()) == 2 * 2**20
    assert _memory_used(_fake_pynvml(v2=False), object()) == 514 * 2**20  # old stacks: v1
