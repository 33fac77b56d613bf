"""What every process sageport starts finds in its environment before its own variables.

A training host, a processing host and an endpoint's model server each start from a clean
environment, not the server's: a few variables of the server's own (:data:`INHERITED_ENV`),
the way back to this server (:class:`ServerAccess`: ``AWS_ENDPOINT_URL``, the key pair and
the region, so that boto3 and the SageMaker SDK inside the job talk to sageport as a
container's talk to AWS), and unbuffered Python output (its log is shipped as it is
written). :func:`gpu_env` is the other half of the contract, applied last so that no job
``Environment`` can widen it: exactly the GPUs the host was granted. What each kind adds on
top (``SM_*``, ``PIP_TARGET``, ``SAGEPORT_OVERLAY_DIR``, ...) is its own module's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sageport.runtime import names

#: variables of the server's own environment a job inherits (everything else is explicit).
INHERITED_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TERM",
    "HOME",
    "USER",
    "LD_LIBRARY_PATH",
)
SANDBOX_HOME = "/tmp"
"""``HOME`` inside the sandbox: the server user's home folder is not there, /tmp is."""


@dataclass(frozen=True)
class ServerAccess:
    """How a process reaches this server: its address, a key pair it accepts, the region."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str

    def env(self) -> dict[str, str]:
        """The AWS variables boto3 (and so the SageMaker SDK) reads."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            names.AWS_REGION_ENV: self.region,
            names.AWS_DEFAULT_REGION_ENV: self.region,
        }


def base_env(
    server_env: Mapping[str, str], access: ServerAccess, *, sandbox: bool
) -> dict[str, str]:
    """The environment a started process begins with: :data:`INHERITED_ENV` from
    ``server_env``, ``HOME`` in the sandbox, :meth:`ServerAccess.env`, unbuffered output."""
    env = {k: v for k, v in server_env.items() if k in INHERITED_ENV}
    if sandbox:
        env["HOME"] = SANDBOX_HOME
    env.update(access.env())
    env["PYTHONUNBUFFERED"] = "1"
    return env


class VisibleGpu(Protocol):
    """A granted GPU as its variables name it (``gpu.inventory.GpuDevice``)."""

    @property
    def index(self) -> int: ...
    @property
    def uuid(self) -> str: ...


def gpu_env(gpus: Iterable[VisibleGpu]) -> dict[str, str]:
    """Exactly the granted GPUs; none at all for CPU types, as on a real ml.t3 instance.

    Indices are NVML's, which CUDA follows only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; the
    container runtime's ``NVIDIA_VISIBLE_DEVICES`` names them by UUID (``void``: none).
    ``SM_NUM_GPUS``, the count, is the training toolkit's (``environment.training_env``).
    """
    granted = list(gpus)
    uuids = ",".join(g.uuid for g in granted)
    return {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": ",".join(str(g.index) for g in granted),
        "NVIDIA_VISIBLE_DEVICES": uuids or "void",
    }
