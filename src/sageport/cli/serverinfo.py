"""What a running server leaves in its data folder for other commands: address and SDK config."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from sageport.api.policy import execution_role_arn
from sageport.services.credentials import KeyPair, load_or_create
from sageport.settings import Settings


def role_arn(settings: Settings) -> str:
    """The role the SDK config names: the server's execution role, which IAM ``GetRole``
    answers and the user's keys are a session of (``api.policy``)."""
    return execution_role_arn(settings.account_id)


def sdk_config_yaml(settings: Settings) -> str:
    """The SageMaker Python SDK config: telemetry off, a default bucket and role."""
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


class DataDirBusy(Exception):
    """Another live server holds the data folder (the message says which and what to do)."""


def hold_data_dir(settings: Settings) -> IO[str]:
    """Lock ``<data>/server.lock`` for as long as the returned file stays open.

    Two servers on one database would both run every job. The kernel drops the lock when the
    process ends, however it ends, so a crashed server leaves nothing stale behind; the file
    is not inherited by jobs' launchers (Python opens it close-on-exec).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(settings.server_lock_file, "a+")  # noqa: SIM115 - held until the server exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        info = running_server(settings)
        where = f" (pid {info['pid']}, {info['endpoint_url']})" if info else ""
        raise DataDirBusy(
            f"another sageport server is using {settings.data_dir}{where}; "
            "stop it, or give this one its own --data-dir"
        ) from None
    return lock


def running_server(settings: Settings) -> dict[str, Any] | None:
    """What ``server.json`` records, if the process it names is still alive."""
    try:
        info = json.loads(settings.server_file.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(info.get("endpoint_url"), str):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return dict(info)


def read_endpoint_url(settings: Settings) -> str:
    """The address of the server running on this data folder, else the configured one: a
    record left by a server that is gone (a quickstart's scratch port, a crash) is ignored."""
    info = running_server(settings)
    return str(info["endpoint_url"]) if info else settings.endpoint_url


def remove_server_file(settings: Settings) -> None:
    """At shutdown: the recorded address is served no more (the record is removed only if it
    is still this process's)."""
    info = running_server(settings)
    if info is not None and info["pid"] == os.getpid():
        with contextlib.suppress(OSError):
            settings.server_file.unlink()


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
