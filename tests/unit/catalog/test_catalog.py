"""The instance catalog against botocore's enums and the facts users schedule by."""

from __future__ import annotations

import re
from importlib.resources import files

import botocore
import botocore.session
import pytest

from sageport.catalog import Catalog, InstanceType, UnknownInstanceType, load_catalog
from sageport.catalog.catalog import parse_catalog
from sageport.errors import ValidationException

ENUMS = (
    "TrainingInstanceType",
    "ProcessingInstanceType",
    "ProductionVariantInstanceType",
    "InstanceType",
    "TransformInstanceType",
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _ml_enum_values() -> dict[str, set[str]]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    values: dict[str, set[str]] = {}
    for shape_name in model.shape_names:
        shape = model.shape_for(shape_name)
        if shape_name.endswith("InstanceType") and shape.type_name == "string" and shape.enum:
            ml = {v for v in shape.enum if v.startswith("ml.")}
            if ml:
                values[shape_name] = ml
    return values


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _catalog_botocore() -> tuple[int, ...]:
    """The botocore release whose enums instances.csv was compiled from (its header says)."""
    header = files("sageport.catalog").joinpath("instances.csv").read_text()[:2000]
    found = re.search(r"\(botocore (\d+\.\d+\.\d+)", header)
    assert found, "instances.csv must name the botocore release its rows come from"
    return _version(found.group(1))


def _newer_botocore() -> bool:
    return _version(botocore.__version__) > _catalog_botocore()


def test_every_ml_instance_type_in_botocore_enums_has_a_row(catalog: Catalog) -> None:
    """Up to the botocore the catalog was compiled from, every type has a row; a newer botocore
    (a user's, not CI's: constraints.txt pins it) may name types the catalog has no facts for,
    and those must be refused by name rather than scheduled on guesses."""
    enums = _ml_enum_values()
    assert set(ENUMS) <= set(enums)
    missing = {name for values in enums.values() for name in values} - set(catalog.names())
    if not _newer_botocore():
        assert not missing, f"add rows to instances.csv for: {sorted(missing)}"
    for name in missing:
        with pytest.raises(UnknownInstanceType, match=re.escape(repr(name))):
            catalog.get(name)


def test_uses_record_the_enums_a_type_appears_in(catalog: Catalog) -> None:
    if _newer_botocore():  # newer models also add existing types to more enums
        pytest.skip(f"uses were compiled from an older botocore than {botocore.__version__}")
    enums = _ml_enum_values()
    for name in enums["TrainingInstanceType"]:
        assert "training" in catalog.get(name).uses
    for name in enums["ProductionVariantInstanceType"]:
        assert "hosting" in catalog.get(name).uses


@pytest.mark.parametrize(
    ("name", "gpus", "model", "memory_gb"),
    [
        ("ml.p3.2xlarge", 1, "V100", 16),
        ("ml.p3dn.24xlarge", 8, "V100", 32),
        ("ml.p2.xlarge", 1, "K80", 12),
        ("ml.g4dn.xlarge", 1, "T4", 16),
        ("ml.g4dn.12xlarge", 4, "T4", 16),
        ("ml.g5.xlarge", 1, "A10G", 24),
        ("ml.g5.48xlarge", 8, "A10G", 24),
        ("ml.g6.xlarge", 1, "L4", 24),
        ("ml.g6e.xlarge", 1, "L40S", 48),
        ("ml.p4d.24xlarge", 8, "A100", 40),
        ("ml.p4de.24xlarge", 8, "A100", 80),
        ("ml.p5.48xlarge", 8, "H100", 80),
        ("ml.p5e.48xlarge", 8, "H200", 141),
        ("ml.p5en.48xlarge", 8, "H200", 141),
    ],
)
def test_gpu_families(catalog: Catalog, name: str, gpus: int, model: str, memory_gb: int) -> None:
    row = catalog.get(name)
    assert (row.accelerator_kind, row.gpu_count, row.gpu_model, row.gpu_memory_gb) == (
        "gpu",
        gpus,
        model,
        memory_gb,
    )


def test_p3_2xlarge_host_facts(catalog: Catalog) -> None:
    row = catalog.get("ml.p3.2xlarge")
    assert (row.vcpus, row.memory_gib) == (8, 61)
    assert row.price_per_hour is not None
    assert row.price_per_hour > 0


def test_cpu_types_follow_their_ec2_family(catalog: Catalog) -> None:
    assert (catalog.get("ml.m5.xlarge").vcpus, catalog.get("ml.m5.xlarge").memory_gib) == (4, 16)
    assert catalog.get("ml.c5.2xlarge").memory_gib == 16
    assert catalog.get("ml.r5.large").memory_gib == 16
    assert catalog.get("ml.m5.xlarge").gpu_count == 0


@pytest.mark.parametrize("name", ["ml.inf1.xlarge", "ml.inf2.48xlarge", "ml.trn1.32xlarge"])
def test_neuron_types_are_not_gpus(catalog: Catalog, name: str) -> None:
    row = catalog.get(name)
    assert row.accelerator_kind == "neuron"
    assert row.accelerator_count >= 1
    assert (row.gpu_count, row.gpu_model, row.gpu_memory_gb) == (0, None, None)


def test_unknown_name_suggests_the_closest(catalog: Catalog) -> None:
    with pytest.raises(UnknownInstanceType, match=r"Did you mean 'ml\.p3\.2xlarge'") as info:
        catalog.get("ml.p3.2xlarg")
    assert isinstance(info.value, ValidationException)


def test_unknown_name_without_a_close_match(catalog: Catalog) -> None:
    with pytest.raises(UnknownInstanceType) as info:
        catalog.get("zzz")
    assert "Did you mean" not in info.value.message


def test_find_is_cheapest_first_with_unpriced_last(catalog: Catalog) -> None:
    rows = catalog.find(gpus=1)
    assert rows
    assert all(r.gpu_count >= 1 for r in rows)
    prices = [r.price_per_hour for r in rows]
    priced = [p for p in prices if p is not None]
    assert priced == sorted(priced)
    first_unpriced = prices.index(None)
    assert all(p is None for p in prices[first_unpriced:])


def test_find_by_model_and_memory(catalog: Catalog) -> None:
    assert {r.name for r in catalog.find(gpu_model="a100")} == {
        "ml.p4d.24xlarge",
        "ml.p4de.24xlarge",
    }
    assert [r.name for r in catalog.find(gpu_model="A100", min_gpu_memory=80)] == [
        "ml.p4de.24xlarge"
    ]
    big = catalog.find(min_gpu_memory=100)
    assert big
    assert all((r.gpu_memory_gb or 0) >= 100 for r in big)
    assert catalog.find(gpu_model="L4", gpus=9) == []


def test_cheapest_that_fits(catalog: Catalog) -> None:
    one_gpu = catalog.cheapest(gpus=1)
    assert one_gpu is not None
    assert one_gpu.name == "ml.g4dn.xlarge"
    big_v100 = catalog.cheapest(gpus=8, gpu_model="V100", min_gpu_memory=32)
    assert big_v100 is not None
    assert big_v100.name == "ml.p3dn.24xlarge"
    assert catalog.cheapest(gpus=64) is None


def _row(name: str, price: float | None, gpus: int = 1) -> InstanceType:
    return InstanceType(
        name, "x", 4, 16.0, "gpu", gpus, "T4", 16.0, price, None, frozenset({"training"})
    )


def test_ordering_on_a_small_catalog() -> None:
    small = Catalog(
        [_row("ml.b", 2.0), _row("ml.none", None), _row("ml.a", 1.0), _row("ml.c", 2.0, 0)]
    )
    assert [r.name for r in small.find(gpus=1)] == ["ml.a", "ml.b", "ml.none"]
    assert [r.name for r in small.find()] == ["ml.a", "ml.c", "ml.b", "ml.none"]


def test_duplicate_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Catalog([_row("ml.a", 1.0), _row("ml.a", 2.0)])


def test_bad_data_row_names_its_line() -> None:
    header = (
        "name,family,vcpus,memory_gib,accelerator_kind,accelerator_count,accelerator_model,"
        "accelerator_memory_gb,price_per_hour,price_basis,uses\n"
    )
    with pytest.raises(ValueError, match="row 2: accelerator_kind 'tpu'"):
        parse_catalog("# comment\n" + header + "ml.x,x,4,16,tpu,1,,,,,training\n")
