"""Explicit configuration: everything the server needs to know, passed in, never global.

A :class:`Settings` is built once by the CLI (from flags and environment) or by a test, and
handed to ``create_app``/``build_services``. Nothing in sageport reads the environment on
its own, so two servers with different settings can run in one process (the tests do).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 5757
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "000000000000"
#: the values ``sandbox`` accepts.
SANDBOX_MODES = ("auto", "off")
#: the service-quota fields (``sageport.services.quotas``): whole numbers, at least 1.
QUOTA_FIELDS = (
    "max_instances_per_training_job",
    "max_instances_per_processing_job",
    "max_training_jobs_in_progress",
    "max_processing_jobs_in_progress",
    "max_instances_per_endpoint",
    "max_endpoints",
    "max_model_servers",
)


def default_data_dir() -> Path:
    """``$SAGEPORT_HOME`` or ``~/.sageport``: one folder per user, so that two users of a
    shared box never share a database or an object store by default."""
    home = os.environ.get("SAGEPORT_HOME")
    return Path(home) if home else Path.home() / ".sageport"


@dataclass(frozen=True)
class Settings:
    """The server's configuration.

    ``database_url`` defaults to a SQLite file in the data folder; a ``postgresql+psycopg://``
    URL works too. ``object_store_url`` is empty for the embedded store on local disk, or an
    ``s3://`` root to keep objects in real S3 / MinIO through s3fs.

    Every field can be set in ``sageport.toml`` in the data folder (:meth:`with_file`), e.g.
    to keep the objects in a real S3 bucket::

        object_store_url = "s3://my-bucket/sageport"
        object_store_endpoint_url = "http://127.0.0.1:9000"   # MinIO; omit for AWS
        object_store_options = { key = "...", secret = "..." } # omit for the AWS chain
    """

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    #: more names clients reach the server by (a DNS name, a reverse proxy's), besides
    #: ``localhost``, ``host`` and the machine's host name: S3 requests to one of them are
    #: path-style, to ``<bucket>.<name>`` virtual-hosted; to other names of several labels,
    #: refused (``sageport.api.s3hosts``: the bucket in them cannot be told apart).
    server_names: list[str] = field(default_factory=list)
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    database_url: str = ""
    #: where S3 objects live: empty (or ``file://``) for the embedded store under
    #: ``objects_dir``; ``file:///path`` for it in another folder; any other fsspec URL for an
    #: :class:`~sageport.storage.fsspec_store.FsspecObjectStore` there: ``s3://bucket/prefix``
    #: (real S3 or MinIO through s3fs, ``pip install 'sageport[s3]'``), ``memory://name``
    #: (gone when the server stops), ``gs://``, ``az://`` ... with their fsspec packages.
    object_store_url: str = ""
    #: for ``s3://`` stores: the S3 endpoint (MinIO, ...); empty means AWS, or what the server
    #: process's ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` say.
    object_store_endpoint_url: str = ""
    #: more fsspec storage options for the store's filesystem (for s3fs: ``key``, ``secret``,
    #: ``token``, ``profile``, ``client_kwargs = {region_name = "..."}`` ...); without
    #: credentials here, s3fs uses the standard AWS chain (env, ``~/.aws``, instance role).
    object_store_options: dict[str, Any] = field(default_factory=dict)
    #: largest JSON request body the control plane accepts (SageMaker's own limit is ~ 1 MB
    #: per the API reference; we allow more so large CreateTrainingJob specs still pass).
    max_json_body_bytes: int = 8 * 1024 * 1024
    #: SigV4 allows 15 minutes of skew, like AWS.
    max_clock_skew_seconds: int = 15 * 60
    #: the default bucket the SageMaker SDK config names.
    default_bucket: str = "sagemaker-sageport"
    #: image (URI, repository, ``framework:version`` or framework) → Python interpreter.
    images: dict[str, str] = field(default_factory=dict)
    #: ``auto``: run each host in a bubblewrap sandbox when bwrap works; ``off``: never.
    #: Anything else is refused (a typo must not silently mean ``auto``).
    sandbox: str = "auto"
    #: uid (and gid) sandboxed jobs and model servers run as when the server runs as root:
    #: not 0, and best not a host account's, so a job's files are told apart.
    sandbox_uid: int = 64055
    #: seconds between SIGTERM and SIGKILL when a job is stopped (SageMaker: 120).
    stop_grace_seconds: float = 120.0
    #: log bytes kept per job host; past it the job runs on, its further output is discarded
    #: (but for the last stderr lines) and the log and status message say so.
    max_log_bytes_per_host: int = 1 << 30
    #: ``SAGEPORT_FAKE_GPUS``-style spec; empty means discover real GPUs through NVML.
    fake_gpus: str = ""
    #: ``any`` GPU with enough memory, or ``strict`` (the catalog's model only).
    gpu_matching: str = "any"
    #: run GPU (and Neuron) instance types whose accelerators this machine can never provide
    #: on the CPU instead, with a warning in the log and the status message.
    cpu_fallback: bool = False
    #: vCPUs accounted per core / memory per GiB of RAM before jobs queue instead of starting
    #: (docs/gpu-allocation.md): a 2-core, 24 GiB laptop accounts 8 vCPUs and 48 GiB, so one
    #: ml.m5.xlarge (4 vCPU, 16 GiB) runs, two run side by side, a third waits.
    cpu_overcommit: float = 4.0
    memory_overcommit: float = 2.0
    #: pin each job host's processes to its share of CPUs (ceil(vCPUs / cpu_overcommit)).
    cpu_affinity: bool = False
    #: GPU telemetry: how often each job's GPUs are sampled, and how long a job may hold
    #: GPUs without using them before its log and status message say so.
    gpu_sample_interval_seconds: float = 5.0
    gpu_idle_warning_seconds: float = 180.0
    #: how often the scheduler looks at running jobs when nothing wakes it.
    poll_interval_seconds: float = 0.2
    #: Service quotas (``sageport.services.quotas``): a create or endpoint update past one is
    #: refused with ``ResourceLimitExceeded`` at once, whatever the number asked for, like an
    #: AWS account's SageMaker quotas. Fixed, modest defaults rather than figures derived from
    #: the inventory: jobs that do not fit yet queue (the allocator's accounting), so these
    #: bound what one key holder may make the server hold, not what runs side by side.
    #: Hosts of one training job (all instance groups) and of one processing job: 16 is more
    #: than one machine or a small cluster runs at once (SageMaker's default for most types
    #: is lower still), and each host is a process tree, a folder and a record.
    max_instances_per_training_job: int = 16
    max_instances_per_processing_job: int = 16
    #: Training / processing jobs in progress at once, queued ones included (as AWS counts
    #: InProgress, which includes waiting for capacity), Stopping ones too.
    max_training_jobs_in_progress: int = 50
    max_processing_jobs_in_progress: int = 50
    #: Model servers of one endpoint (every variant together, InitialInstanceCount or
    #: UpdateEndpointWeightsAndCapacities' DesiredInstanceCount): each is a Python process
    #: holding the model in memory, and 8 is already more than two cores can keep busy.
    max_instances_per_endpoint: int = 8
    #: Endpoints that are not Deleting or Failed (Creating, InService, Updating, ...).
    max_endpoints: int = 20
    #: Model servers over every such endpoint together (an update counts its target).
    max_model_servers: int = 32

    def __post_init__(self) -> None:
        """Refuse values that would otherwise be misread later (``ValueError``, one line)."""
        if self.sandbox not in SANDBOX_MODES:
            accepted = " or ".join(f'"{m}"' for m in SANDBOX_MODES)
            raise ValueError(f"sandbox must be {accepted}, not {self.sandbox!r}")
        if type(self.sandbox_uid) is not int or not 0 < self.sandbox_uid < 2**31:
            raise ValueError(f"sandbox_uid must be a uid above 0, not {self.sandbox_uid!r}")
        if not isinstance(self.host, str):
            raise ValueError(f'host must be an address such as "127.0.0.1", not {self.host!r}')
        names = self.server_names
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"server_names must be a list of host names, not {names!r}")
        for name in QUOTA_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        port_ok = isinstance(self.port, int) and not isinstance(self.port, bool)
        if not port_ok or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be a number from 0 to 65535, not {self.port!r}")

    @property
    def jobs_dir(self) -> Path:
        """Host folders of training and processing jobs."""
        return self.data_dir / "jobs"

    @property
    def settings_file(self) -> Path:
        """Optional TOML file with the fields above (``[images]`` table, ``sandbox`` ...)."""
        return self.data_dir / "sageport.toml"

    def with_file(self) -> Settings:
        """These settings, with what ``sageport.toml`` in the data folder says on top."""
        import tomllib
        from dataclasses import fields, replace

        if not self.settings_file.exists():
            return self
        doc = tomllib.loads(self.settings_file.read_text())
        known = {f.name for f in fields(self)} - {"data_dir"}
        unknown = set(doc) - known
        if unknown:
            raise ValueError(
                f"{self.settings_file}: unknown settings {sorted(unknown)}; known: {sorted(known)}"
            )
        return replace(self, **doc)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sageport.db'}"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def server_lock_file(self) -> Path:
        """Held (``flock``) by the server using this folder: one server per data folder."""
        return self.data_dir / "server.lock"

    @property
    def server_file(self) -> Path:
        """Where a running server records its address, for ``sageport env``."""
        return self.data_dir / "server.json"

    @property
    def sdk_config_file(self) -> Path:
        """The SageMaker SDK config (``SAGEMAKER_USER_CONFIG_OVERRIDE``) the server writes."""
        return self.data_dir / "sagemaker-config.yaml"

    @property
    def endpoint_url(self) -> str:
        """Where clients reach the server: loopback for the all-interfaces addresses."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:  # an IPv6 address goes in brackets in a URL
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
