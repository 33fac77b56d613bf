"""Network isolation at create: honoured, or refused with why, never accepted and dropped.

A training or processing job with ``EnableNetworkIsolation`` runs in a sandbox with a network
namespace of its own (``runtime.isolation``, ``backends.sandbox``). Two cases cannot be
honoured, so they are refused here, before anything is stored:

- more than one instance: SageMaker lets an isolated job's containers talk to each other,
  but here the ranks of a multi-host job meet on the machine's loopback, which an isolated
  host no longer shares (a netns shared by the job's hosts alone is not built);
- ``sandbox = "off"``: without bubblewrap there is no namespace to isolate the job in, and
  running it on the machine's network would mislead whoever relies on the setting.

CreateModel's ``EnableNetworkIsolation`` is refused in ``services.unsupported``: the model
server must answer this server on loopback TCP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sageport.errors import ValidationException
from sageport.runtime.isolation import network_isolated
from sageport.services.quotas import training_instances
from sageport.settings import Settings

TRAINING_FIELD = "EnableNetworkIsolation"
PROCESSING_FIELD = "NetworkConfig.EnableNetworkIsolation"


def check_training(settings: Settings, spec: Mapping[str, Any]) -> None:
    """CreateTrainingJob: refuse isolation that could not be honoured."""
    check_job(settings, spec, training_instances(spec), TRAINING_FIELD)


def check_processing(settings: Settings, spec: Mapping[str, Any]) -> None:
    """CreateProcessingJob: refuse isolation that could not be honoured."""
    cluster = (spec.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    check_job(settings, spec, int(cluster.get("InstanceCount", 1)), PROCESSING_FIELD)


def check_job(settings: Settings, spec: Mapping[str, Any], instances: int, field: str) -> None:
    """Refuse an isolated job this server cannot isolate. ``field`` names the flag as the
    request spells it; ``instances`` is how many hosts the job asks for."""
    if not network_isolated(spec):
        return
    if instances > 1:
        raise ValidationException(
            f"{field} is true with {instances} instances: sageport isolates a job by giving "
            "its host a network namespace of its own, and the instances of a multi-instance "
            "job reach each other over this machine's loopback, which an isolated host does "
            "not share. Use InstanceCount 1, or leave "
            f"{field} out."
        )
    if settings.sandbox == "off":
        raise ValidationException(
            f"{field} is true but this server runs jobs without a sandbox "
            f'(sandbox = "off" in {settings.settings_file}): there is no network namespace '
            "to isolate the job in, and it would run on the machine's network. Install "
            'bubblewrap and remove sandbox = "off", or leave '
            f"{field} out."
        )
