"""Whether a job asked for network isolation, read from its request in one place.

SageMaker's ``EnableNetworkIsolation`` (top level of CreateTrainingJob, under
``NetworkConfig`` of CreateProcessingJob) gives the container no network at all: the
platform downloads its inputs before it starts and uploads its outputs after it exits. Here
the host's sandbox then gets a network namespace of its own (``--unshare-net``: only its own
loopback), so it reaches neither this server nor anything else. The create-time rules (one
instance only, a sandbox required) are ``services.isolation``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sageport.runtime.errors import ContractError

NO_PIP_INSTALL = (
    "EnableNetworkIsolation is true, so the job has no network and its requirements.txt "
    "cannot be installed (SageMaker cannot pip install under network isolation either): "
    "install the packages into the image's Python, or leave EnableNetworkIsolation out."
)


def network_isolated(spec: Mapping[str, Any]) -> bool:
    """Whether a CreateTrainingJob or CreateProcessingJob request asks for isolation."""
    if spec.get("EnableNetworkIsolation") is True:
        return True
    network = spec.get("NetworkConfig")
    return isinstance(network, Mapping) and network.get("EnableNetworkIsolation") is True


def check_no_install(spec: Mapping[str, Any], installs: bool) -> None:
    """Refuse to start an isolated job that would pip install its requirements first."""
    if installs and network_isolated(spec):
        raise ContractError(NO_PIP_INSTALL)
