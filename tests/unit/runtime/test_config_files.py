from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sageport.runtime.config_files import (
    all_hosts,
    config_files,
    input_data_config,
    resource_config,
    write_config_files,
)
from sageport.runtime.paths import HostPaths


def _spec(**extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "HyperParameters": {"epochs": "2", "name": '"abc"'},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://b/t",
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
            },
            {
                "ChannelName": "test",
                "InputMode": "FastFile",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/v"}},
            },
        ],
        "ResourceConfig": {
            "InstanceType": "ml.g5.2xlarge",
            "InstanceCount": 2,
            "VolumeSizeInGB": 30,
        },
    }
    spec.update(extra)
    return spec


def test_input_data_config_follows_the_documented_format() -> None:
    assert input_data_config(_spec(), "algo-1") == {
        "train": {
            "ContentType": "text/csv",
            "TrainingInputMode": "File",
            "S3DistributionType": "ShardedByS3Key",
            "RecordWrapperType": "None",
        },
        "test": {
            "TrainingInputMode": "FastFile",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        },
    }


def test_resource_config_of_a_homogeneous_cluster() -> None:
    assert resource_config(_spec(), "algo-2") == {
        "current_host": "algo-2",
        "current_instance_type": "ml.g5.2xlarge",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1", "algo-2"],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": "ml.g5.2xlarge",
                "hosts": ["algo-1", "algo-2"],
            }
        ],
        "network_interface_name": "eth0",
    }


def test_hosts_are_sorted_lexicographically_like_sagemaker() -> None:
    spec = _spec(ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 11})
    assert all_hosts(spec)[:4] == ["algo-1", "algo-10", "algo-11", "algo-2"]


def test_heterogeneous_groups_number_hosts_across_groups_and_filter_channels() -> None:
    spec = _spec(
        ResourceConfig={
            "InstanceGroups": [
                {"InstanceGroupName": "cpu", "InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
                {"InstanceGroupName": "gpu", "InstanceType": "ml.p4d.24xlarge", "InstanceCount": 2},
            ]
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://b/t",
                        "InstanceGroupNames": ["gpu"],
                    }
                },
            }
        ],
    )
    rc = resource_config(spec, "algo-3")
    assert rc["current_group_name"] == "gpu"
    assert rc["current_instance_type"] == "ml.p4d.24xlarge"
    assert rc["hosts"] == ["algo-1", "algo-2", "algo-3"]
    assert [g["hosts"] for g in rc["instance_groups"]] == [["algo-1"], ["algo-2", "algo-3"]]
    assert input_data_config(spec, "algo-1") == {}
    assert list(input_data_config(spec, "algo-2")) == ["train"]


def test_unknown_host_is_refused() -> None:
    with pytest.raises(ValueError, match="algo-9"):
        resource_config(_spec(), "algo-9")


def test_write_config_files_writes_the_three_files(tmp_path: Path) -> None:
    paths = HostPaths(tmp_path / "ml")
    files = config_files(_spec(), "algo-1")
    write_config_files(paths, files)
    assert json.loads(paths.hyperparameters_file.read_text()) == {"epochs": "2", "name": '"abc"'}
    assert json.loads(paths.input_data_config_file.read_text()) == files.input_data_config
    assert json.loads(paths.resource_config_file.read_text()) == files.resource_config
