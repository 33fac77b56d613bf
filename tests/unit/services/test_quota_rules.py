"""The quota rules over a real database: what counts, and what a refusal says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sageport.clock import FakeClock
from sageport.errors import ResourceLimitExceeded, ValidationException
from sageport.services import quotas
from sageport.settings import Settings
from sageport.store import resources
from sageport.store.database import Database


def _config(db: Database, clock: FakeClock, name: str, counts: list[int]) -> None:
    variants = [
        {"VariantName": f"v{i}", "InstanceType": "ml.m5.large", "InitialInstanceCount": n}
        for i, n in enumerate(counts)
    ]
    with db.begin() as conn:
        resources.create(
            conn,
            kind="EndpointConfig",
            name=name,
            arn=f"arn:{name}",
            spec={"EndpointConfigName": name, "ProductionVariants": variants},
            now=clock.now(),
        )


def _endpoint(
    db: Database, clock: FakeClock, name: str, config: str, status: str, **extra: Any
) -> None:
    with db.begin() as conn:
        resources.create(
            conn,
            kind="Endpoint",
            name=name,
            arn=f"arn:ep/{name}",
            spec={"EndpointName": name, "EndpointConfigName": config},
            now=clock.now(),
            status=status,
            state={"config": config, **extra},
        )


def test_model_servers_count_live_endpoints_their_set_counts_and_pending_targets(
    db: Database, clock: FakeClock, settings: Settings
) -> None:
    limited = replace(settings, max_model_servers=10, max_endpoints=3)
    _config(db, clock, "small", [1, 2])
    _config(db, clock, "big", [4])
    _endpoint(db, clock, "a", "small", "InService", counts={"v0": 2})  # 4
    _endpoint(db, clock, "b", "small", "Updating", pending={"config": "big", "counts": {}})  # 4
    _endpoint(db, clock, "gone", "big", "Deleting")
    _endpoint(db, clock, "broken", "big", "Failed")
    with db.begin() as conn:
        quotas.check_endpoint_capacity(conn, limited, "c", 2, new=True)
        with pytest.raises(ResourceLimitExceeded) as exc:
            quotas.check_endpoint_capacity(conn, limited, "c", 3, new=True)
        assert exc.value.message.startswith(
            "The account-level service limit 'total number of instances across all endpoints' "
            "is 10 Instances, with current utilization of 8 Instances and a request delta of 3"
        )
        assert "max_model_servers" in exc.value.message
        # an update of "a" counts its new target instead of its current 4
        quotas.check_endpoint_capacity(conn, limited, "a", 6, new=False)


def test_endpoints_in_service_count_against_max_endpoints(
    db: Database, clock: FakeClock, settings: Settings
) -> None:
    limited = replace(settings, max_endpoints=1)
    _config(db, clock, "one", [1])
    _endpoint(db, clock, "a", "one", "Creating")
    with db.begin() as conn, pytest.raises(ResourceLimitExceeded) as exc:
        quotas.check_endpoint_capacity(conn, limited, "b", 1, new=True)
    assert "'number of endpoints' is 1 Endpoints" in exc.value.message


def test_instance_counts_are_checked_without_building_anything(settings: Settings) -> None:
    spec = {"ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 10**30}}
    with pytest.raises(ResourceLimitExceeded):
        quotas.check_training_job(settings, spec)
    with pytest.raises(ValidationException, match="at least 1"):
        quotas.check_training_job(settings, {"ResourceConfig": {"InstanceCount": 0}})
    with pytest.raises(ResourceLimitExceeded):
        quotas.check_endpoint_instances(settings, {"AllTraffic": 9})
    quotas.check_endpoint_instances(settings, {"A": 4, "B": 4})


def test_quotas_come_from_the_settings_file_and_are_checked(tmp_path: Path) -> None:
    (tmp_path / "sageport.toml").write_text("max_endpoints = 3\n")
    assert Settings(data_dir=tmp_path).with_file().max_endpoints == 3
    (tmp_path / "sageport.toml").write_text("max_endpoints = 0\n")
    with pytest.raises(ValueError, match="max_endpoints must be a whole number of at least 1"):
        Settings(data_dir=tmp_path).with_file()
