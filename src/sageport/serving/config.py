"""The model server's configuration: the SAGEMAKER_* contract plus sageport's own names.

Every variable the server reads is listed here and nowhere else; ``ServerConfig.from_env`` is a
pure function of the environment and the command line, so tests build configs directly.

SageMaker / inference toolkit names (``sagemaker_inference/parameters.py``, PyTorch container
``ts_parameters.py``):

- ``SAGEMAKER_PROGRAM``: the user module file in the code folder (default ``inference.py``).
- ``SAGEMAKER_SUBMIT_DIRECTORY``: the code folder. ``/opt/ml/model/...`` (what the SDK sets) is
  read relative to ``--model-dir``; an ``s3://`` value (the runtime unpacks it into
  ``<model-dir>/code``) and an absent one mean ``<model-dir>/code``.
- ``SAGEMAKER_MODEL_SERVER_WORKERS``: worker processes sharing the port (default 1).
- ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` / ``SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS`` /
  ``SAGEMAKER_TS_RESPONSE_TIMEOUT``: seconds a request may take (default 60).
- ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``: Accept used when a request has none or ``*/*``.
- ``SAGEMAKER_MAX_PAYLOAD_IN_MB``: largest request body (default 6).
- ``SAGEMAKER_TS_BATCH_SIZE`` / ``SAGEMAKER_TS_MAX_BATCH_DELAY`` (milliseconds, default 100):
  dynamic batching, on when the batch size is above 1.
- ``SAGEMAKER_BIND_TO_PORT``: the port when ``--port`` is not given (default 8080).
- ``SAGEMAKER_CONTAINER_LOG_LEVEL``: Python logging level (numeric or name, default 20).

sageport names (each wins over its SageMaker counterpart):

- ``SAGEPORT_BATCH_SIZE``, ``SAGEPORT_MAX_BATCH_DELAY_MS``: dynamic batching.
- ``SAGEPORT_REQUEST_TIMEOUT``: seconds a request may take.
- ``SAGEPORT_HANDLER_THREADS``: threads that run handler code (default 2).
- ``SAGEPORT_TORCH_THREADS``: ``torch.set_num_threads`` (default: cores / workers).
- ``SAGEPORT_OVERLAY_DIR``: where ``code/requirements.txt`` environments are installed
  (default ``~/.cache/sageport/overlays``), one folder per requirements hash.
- ``SAGEPORT_FRAMEWORK``: ``pytorch``, ``tensorflow`` or ``none`` to skip detection.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_ACCEPT = "application/json"
DEFAULT_MAX_PAYLOAD_MB = 6.0
DEFAULT_BATCH_DELAY_MS = 100.0
SAGEMAKER_MODEL_DIR = "/opt/ml/model"
#: the model server's exit status when its model failed to load (several workers); the
#: endpoint runner reports it as a load failure rather than a crash.
LOAD_FAILED_EXIT = 78


@dataclass(frozen=True)
class ServerConfig:
    """What one model-server process needs; see the module docstring for the sources."""

    model_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    code_dir: Path | None = None
    program: str = "inference.py"
    workers: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    default_accept: str = DEFAULT_ACCEPT
    max_payload_bytes: int = int(DEFAULT_MAX_PAYLOAD_MB * 1024 * 1024)
    batch_size: int = 1
    max_batch_delay_s: float = DEFAULT_BATCH_DELAY_MS / 1000
    handler_threads: int = 2
    torch_threads: int | None = None
    overlay_root: Path | None = None
    framework: str | None = None
    log_level: int = 20

    @property
    def batching(self) -> bool:
        return self.batch_size > 1

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        model_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        workers: int | None = None,
        timeout_s: float | None = None,
    ) -> ServerConfig:
        """The config for ``model_dir``; explicit arguments (the command line) win over env."""
        model_dir = model_dir.resolve()
        program = env.get("SAGEMAKER_PROGRAM") or "inference.py"
        batch_size = _first_int(env, "SAGEPORT_BATCH_SIZE", "SAGEMAKER_TS_BATCH_SIZE") or 1
        delay_ms = _first_float(env, "SAGEPORT_MAX_BATCH_DELAY_MS", "SAGEMAKER_TS_MAX_BATCH_DELAY")
        timeout = timeout_s or _first_float(
            env,
            "SAGEPORT_REQUEST_TIMEOUT",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT",
            "SAGEMAKER_TS_RESPONSE_TIMEOUT",
        )
        payload_mb = _first_float(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB") or DEFAULT_MAX_PAYLOAD_MB
        overlay = env.get("SAGEPORT_OVERLAY_DIR")
        framework = (env.get("SAGEPORT_FRAMEWORK") or "").strip().lower() or None
        return cls(
            model_dir=model_dir,
            host=host,
            port=port or _first_int(env, "SAGEMAKER_BIND_TO_PORT") or DEFAULT_PORT,
            code_dir=resolve_code_dir(env.get("SAGEMAKER_SUBMIT_DIRECTORY"), model_dir),
            program=program,
            workers=max(1, workers or _first_int(env, "SAGEMAKER_MODEL_SERVER_WORKERS") or 1),
            timeout_s=timeout or DEFAULT_TIMEOUT_S,
            default_accept=env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or DEFAULT_ACCEPT,
            max_payload_bytes=int(payload_mb * 1024 * 1024),
            batch_size=max(1, batch_size),
            max_batch_delay_s=(delay_ms if delay_ms is not None else DEFAULT_BATCH_DELAY_MS) / 1000,
            handler_threads=max(1, _first_int(env, "SAGEPORT_HANDLER_THREADS") or 2),
            torch_threads=_first_int(env, "SAGEPORT_TORCH_THREADS"),
            overlay_root=Path(overlay) if overlay else None,
            framework=framework,
            log_level=_log_level(env.get("SAGEMAKER_CONTAINER_LOG_LEVEL")),
        )


def resolve_code_dir(submit_directory: str | None, model_dir: Path) -> Path:
    """Where the user module lives, given ``SAGEMAKER_SUBMIT_DIRECTORY``.

    The SDK writes container paths (``/opt/ml/model/code``); outside a container the model is
    at ``model_dir``, so that prefix is re-rooted there. Remote URIs were unpacked by the
    runtime into ``<model_dir>/code``.
    """
    default = model_dir / "code"
    if not submit_directory or "://" in submit_directory:
        return default
    path = Path(submit_directory)
    try:
        relative = path.relative_to(SAGEMAKER_MODEL_DIR)
    except ValueError:
        return path if path.is_absolute() else model_dir / path
    return model_dir / relative


def _first_int(env: Mapping[str, str], *names: str) -> int | None:
    value = _first_float(env, *names)
    return int(value) if value is not None else None


def _first_float(env: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        raw = env.get(name, "").strip()
        if raw:
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None
    return None


def _log_level(raw: str | None) -> int:
    if not raw:
        return 20
    if raw.strip().isdigit():
        return int(raw)
    import logging

    level = logging.getLevelName(raw.strip().upper())
    return level if isinstance(level, int) else 20


def default_torch_threads(workers: int) -> int:
    """Intra-op threads per worker process: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
