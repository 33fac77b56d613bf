"""What a running server leaves in its data folder for other commands: address and SDK config."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

from sageport.api.credentials import KeyPair, load_or_create
from sageport.settings import Settings

ROLE_NAME = "SageportExecutionRole"


def role_arn(settings: Settings) -> str:
    """A role ARN for SDK config: any string with a ``/`` keeps the SDK away from IAM."""
    return f"arn:aws:iam::{settings.account_id}:role/{ROLE_NAME}"


def sdk_config_yaml(settings: Settings) -> str:
    """The SageMaker Python SDK config: telemetry off, a default bucket and role, no STS/IAM."""
    role = role_arn(settings)
    return (
        "# Written by sageport serve; SAGEMAKER_USER_CONFIG_OVERRIDE points here.\n"
        "SchemaVersion: '1.0'\n"
        "SageMaker:\n"
        "  PythonSDK:\n"
        "    Modules:\n"
        "      TelemetryOptOut: true\n"
        "      Session:\n"
        f"        DefaultS3Bucket: {settings.default_bucket}\n"
        "  TrainingJob:\n"
        f"    RoleArn: {role}\n"
        "  ProcessingJob:\n"
        f"    RoleArn: {role}\n"
        "  Model:\n"
        f"    ExecutionRoleArn: {role}\n"
    )


def listen_address(settings: Settings) -> Settings:
    """``settings`` with a port the server can listen on: port 0 becomes a free one, so that
    what is recorded in ``server.json`` is what gets bound. A port taken by another process
    (a second server on the same port) raises ``OSError`` before anything is written.

    The probe socket is closed again; uvicorn binds the same address (with SO_REUSEADDR, as
    here) right after.
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((settings.host, settings.port))
        port = int(probe.getsockname()[1])
    return settings if port == settings.port else replace(settings, port=port)


def write_server_files(settings: Settings) -> None:
    """Record the address and write the SDK config; called when the server starts."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    info = {"endpoint_url": settings.endpoint_url, "pid": os.getpid(), "region": settings.region}
    _atomic_write(settings.server_file, json.dumps(info, indent=2))
    _atomic_write(settings.sdk_config_file, sdk_config_yaml(settings))


def read_endpoint_url(settings: Settings) -> str:
    """The address of the server on this data folder, or the default one if none recorded."""
    try:
        return str(json.loads(settings.server_file.read_text())["endpoint_url"])
    except (OSError, ValueError, KeyError):
        return settings.endpoint_url


def env_lines(settings: Settings) -> list[str]:
    """The ``export`` lines that point boto3, the AWS CLI and the SageMaker SDK here."""
    key: KeyPair = load_or_create(settings.credentials_file)[0]
    if not settings.sdk_config_file.exists():
        _atomic_write(settings.sdk_config_file, sdk_config_yaml(settings))
    values = {
        "AWS_ENDPOINT_URL": read_endpoint_url(settings),
        "AWS_ACCESS_KEY_ID": key.access_key_id,
        "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_REGION": settings.region,
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(settings.sdk_config_file),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }
    return [f"export {k}={_quote(v)}" for k, v in values.items()]


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
