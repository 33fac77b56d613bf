"""Explicit configuration: everything the server needs to know, passed in, never global.

A :class:`Settings` is built once by the CLI (from flags and environment) or by a test, and
handed to ``create_app``/``build_services``. Nothing in sageport reads the environment on
its own, so two servers with different settings can run in one process (the tests do).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 5757
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "000000000000"


def default_data_dir() -> Path:
    """``$SAGEPORT_HOME`` or ``~/.sageport`` (DESIGN.md fixes this)."""
    home = os.environ.get("SAGEPORT_HOME")
    return Path(home) if home else Path.home() / ".sageport"


@dataclass(frozen=True)
class Settings:
    """The server's configuration.

    ``database_url`` defaults to a SQLite file in the data folder; a ``postgresql+psycopg://``
    URL works too. ``object_store_url`` is empty for the embedded store on local disk, or an
    ``s3://`` root to keep objects in real S3 / MinIO through s3fs.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    database_url: str = ""
    object_store_url: str = ""
    #: largest JSON request body the control plane accepts (SageMaker's own limit is ~ 1 MB
    #: per the API reference; we allow more so large CreateTrainingJob specs still pass).
    max_json_body_bytes: int = 8 * 1024 * 1024
    #: SigV4 allows 15 minutes of skew, like AWS.
    max_clock_skew_seconds: int = 15 * 60
    #: the default bucket the SageMaker SDK config names.
    default_bucket: str = "sagemaker-sageport"

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
    def server_file(self) -> Path:
        """Where a running server records its address, for ``sageport env``."""
        return self.data_dir / "server.json"

    @property
    def sdk_config_file(self) -> Path:
        """The SageMaker SDK config (``SAGEMAKER_USER_CONFIG_OVERRIDE``) the server writes."""
        return self.data_dir / "sagemaker-config.yaml"

    @property
    def endpoint_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"
