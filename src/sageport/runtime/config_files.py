"""The three files SageMaker writes to ``/opt/ml/input/config`` before the container starts.

They are derived from the validated ``CreateTrainingJob`` request (botocore member names) and
the host the file is for. The formats are SageMaker's (AWS docs "How Amazon SageMaker Provides
Training Information", and what the toolkit's ``environment.py`` reads):

- ``hyperparameters.json``: the request's HyperParameters map, verbatim (values stay strings);
- ``inputdataconfig.json``: ``{channel: {ContentType?, TrainingInputMode, S3DistributionType,
  RecordWrapperType}}``;
- ``resourceconfig.json``: ``current_host``, ``current_instance_type``, ``current_group_name``,
  ``hosts`` (sorted), ``instance_groups``, ``network_interface_name``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sageport.runtime import names
from sageport.runtime.paths import HostPaths


@dataclass(frozen=True)
class InstanceGroup:
    """One group of identical hosts; a job without InstanceGroups has one, homogeneousCluster."""

    name: str
    instance_type: str
    hosts: tuple[str, ...]

    def as_config(self) -> dict[str, Any]:
        """The ``instance_groups`` entry of resourceconfig.json."""
        return {
            "instance_group_name": self.name,
            "instance_type": self.instance_type,
            "hosts": list(self.hosts),
        }


def instance_groups(spec: Mapping[str, Any]) -> list[InstanceGroup]:
    """The job's hosts, ``algo-1`` … ``algo-N``, numbered across groups in request order."""
    resources: Mapping[str, Any] = spec.get("ResourceConfig") or {}
    requested = resources.get("InstanceGroups") or [
        {
            "InstanceGroupName": names.DEFAULT_INSTANCE_GROUP,
            "InstanceType": resources.get("InstanceType", names.LOCAL_INSTANCE_TYPE),
            "InstanceCount": resources.get("InstanceCount", 1),
        }
    ]
    groups: list[InstanceGroup] = []
    next_index = 1
    for group in requested:
        count = int(group.get("InstanceCount", 1))
        hosts = tuple(f"{names.HOST_PREFIX}{next_index + i}" for i in range(count))
        next_index += count
        groups.append(InstanceGroup(group["InstanceGroupName"], group["InstanceType"], hosts))
    return groups


def all_hosts(spec: Mapping[str, Any]) -> list[str]:
    """Every host of the job, sorted as resourceconfig.json lists them (lexicographically)."""
    return sorted(host for group in instance_groups(spec) for host in group.hosts)


def group_of(spec: Mapping[str, Any], host: str) -> InstanceGroup:
    """The instance group ``host`` belongs to; ``ValueError`` if the job has no such host."""
    for group in instance_groups(spec):
        if host in group.hosts:
            return group
    raise ValueError(f"host {host!r} is not one of the job's hosts {all_hosts(spec)}")


def hyperparameters_config(spec: Mapping[str, Any]) -> dict[str, str]:
    """hyperparameters.json: the request's map as sent (decoding is the reader's job)."""
    return dict(spec.get("HyperParameters") or {})


def input_data_config(spec: Mapping[str, Any], host: str) -> dict[str, dict[str, str]]:
    """inputdataconfig.json for ``host``.

    A channel whose ``S3DataSource.InstanceGroupNames`` leaves out this host's group is not
    delivered to it, so it is not listed either. The channel's ``InputMode`` wins over the
    job's ``TrainingInputMode`` (API_Channel).
    """
    default_mode = (spec.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
    group_name = group_of(spec, host).name
    config: dict[str, dict[str, str]] = {}
    for channel in spec.get("InputDataConfig") or []:
        s3_source: Mapping[str, Any] = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        wanted_groups = s3_source.get("InstanceGroupNames")
        if wanted_groups and group_name not in wanted_groups:
            continue
        entry: dict[str, str] = {}
        if "ContentType" in channel:
            entry["ContentType"] = channel["ContentType"]
        entry["TrainingInputMode"] = channel.get("InputMode") or default_mode
        # The file's key is S3DistributionType; the API member is S3DataDistributionType.
        entry["S3DistributionType"] = s3_source.get("S3DataDistributionType", "FullyReplicated")
        entry["RecordWrapperType"] = channel.get("RecordWrapperType", "None")
        config[channel["ChannelName"]] = entry
    return config


def resource_config(spec: Mapping[str, Any], host: str) -> dict[str, Any]:
    """resourceconfig.json for ``host``."""
    group = group_of(spec, host)
    return {
        "current_host": host,
        "current_instance_type": group.instance_type,
        "current_group_name": group.name,
        "hosts": all_hosts(spec),
        "instance_groups": [g.as_config() for g in instance_groups(spec)],
        "network_interface_name": names.DEFAULT_NETWORK_INTERFACE,
    }


@dataclass(frozen=True)
class ConfigFiles:
    """The contents of the three config files of one host, built once and used twice:
    written to ``input/config`` and read by the ``SM_*`` environment builder."""

    hyperparameters: dict[str, str]
    input_data_config: dict[str, dict[str, str]]
    resource_config: dict[str, Any]


def config_files(spec: Mapping[str, Any], host: str) -> ConfigFiles:
    """All three config files for ``host`` of the job ``spec``."""
    return ConfigFiles(
        hyperparameters=hyperparameters_config(spec),
        input_data_config=input_data_config(spec, host),
        resource_config=resource_config(spec, host),
    )


def write_config_files(paths: HostPaths, files: ConfigFiles) -> None:
    """Write the three files under ``paths.input_config_dir`` (does I/O; creates the folder)."""
    paths.input_config_dir.mkdir(parents=True, exist_ok=True)
    for path, content in (
        (paths.hyperparameters_file, files.hyperparameters),
        (paths.input_data_config_file, files.input_data_config),
        (paths.resource_config_file, files.resource_config),
    ):
        path.write_text(json.dumps(content), encoding="utf-8")
