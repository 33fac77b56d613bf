"""One host's ``/opt/ml`` folder: where every file of the training contract lives.

The same ``HostPaths`` describes the folder twice: as the server sees it (a folder under the
data dir, used to create and read files) and as the process sees it (``/opt/ml`` inside a
sandbox, or the same host folder plus ``SAGEMAKER_BASE_DIR`` without one). The environment
builder takes the second view, so every ``SM_*`` path is one the process can open.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sageport.runtime import names
from sageport.runtime.errors import ContractError


@dataclass(frozen=True)
class HostPaths:
    """The layout under ``root`` (what the process sees as ``/opt/ml``)."""

    root: Path

    @classmethod
    def in_sandbox(cls) -> HostPaths:
        """The paths as a sandboxed process sees them (the folder bind-mounted at /opt/ml)."""
        return cls(Path(names.DEFAULT_BASE_DIR))

    @property
    def is_default_root(self) -> bool:
        """True when ``root`` is ``/opt/ml`` itself, so no ``SAGEMAKER_BASE_DIR`` is needed."""
        return self.root == Path(names.DEFAULT_BASE_DIR)

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def input_config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def input_data_dir(self) -> Path:
        return self.input_dir / "data"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config_dir / names.HYPERPARAMETERS_FILE

    @property
    def input_data_config_file(self) -> Path:
        return self.input_config_dir / names.INPUT_DATA_CONFIG_FILE

    @property
    def resource_config_file(self) -> Path:
        return self.input_config_dir / names.RESOURCE_CONFIG_FILE

    def channel_dir(self, channel: str) -> Path:
        """``input/data/<channel>``: File and FastFile mode data (Pipe mode is not offered)."""
        return self.input_data_dir / channel

    @property
    def code_dir(self) -> Path:
        """The unpacked ``sourcedir.tar.gz``; the user process's working directory."""
        return self.root / "code"

    @property
    def model_dir(self) -> Path:
        """Tarred to ``model.tar.gz`` when the job ends."""
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        """Tarred to ``output.tar.gz`` (the toolkit no longer adds a per-host folder)."""
        return self.output_dir / "data"

    @property
    def output_intermediate_dir(self) -> Path:
        """Not created by ``make_tree``: the toolkit syncs it only when it does not exist."""
        return self.output_dir / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / names.FAILURE_FILE

    @property
    def success_file(self) -> Path:
        return self.output_dir / names.SUCCESS_FILE

    @property
    def checkpoints_dir(self) -> Path:
        """The default ``CheckpointConfig.LocalPath``."""
        return self.root / "checkpoints"


def make_tree(paths: HostPaths, channels: Iterable[str] = ()) -> None:
    """Create the folders a training container starts with (idempotent; does I/O).

    ``output/intermediate`` is left out on purpose: the toolkit only starts its S3 sync of
    that folder when the folder does not exist yet (``intermediate_output.start_sync``).
    """
    folders = [
        paths.input_config_dir,
        paths.input_data_dir,
        paths.code_dir,
        paths.model_dir,
        paths.output_data_dir,
        paths.checkpoints_dir,
        *(paths.channel_dir(channel) for channel in channels),
    ]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


def rewrite_opt_ml(value: str, root: Path) -> str:
    """``value`` with an ``/opt/ml`` path in it pointing under ``root`` instead.

    For processes without a sandbox, where nothing is mounted at ``/opt/ml``: a command-line
    argument or environment value that is such a path (``/opt/ml/code/train.py``), or an
    option that carries one (``--model-dir=/opt/ml/model``), is rewritten; anything else,
    including paths that merely start with the same letters (``/opt/mlflow``), is kept.
    """
    base = names.DEFAULT_BASE_DIR
    head, sep, tail = value.partition("=") if value.startswith("-") else ("", "", value)
    if tail == base or tail.startswith(base + "/"):
        return head + sep + str(root) + tail[len(base) :]
    return value


#: an /opt/ml/input/data/<channel>/<file> path in a command (a word of a shell line too)
_CHANNEL_FILE = re.compile(r"/opt/ml/input/data/([^/\s\"';&|]+)/([^\s\"';&|]+)")


def command_channel_files(words: Iterable[str]) -> dict[str, frozenset[str]]:
    """The channel files a job's command names, by channel: ``{"sm_drivers": {"sm_train.sh"}}``
    for ModelTrainer's ``bash -c "chmod +x /opt/ml/input/data/sm_drivers/sm_train.sh && ..."``.

    Staging gives these a private copy the job owns instead of a read-only hard link: a
    command that runs a driver from its input data may ``chmod`` or rewrite it first, as root
    in a container can, and a job may only ``chmod`` a file it owns.
    """
    found: dict[str, set[str]] = {}
    for word in words:
        for channel, rel in _CHANNEL_FILE.findall(word):
            normal = posixpath.normpath(rel)
            if not normal.startswith(".."):
                found.setdefault(channel, set()).add(normal)
    return {channel: frozenset(rels) for channel, rels in found.items()}


class PathOutsideBase(ContractError):
    """A path from a request that leaves the folder it must stay in (message names the field)."""


def confine(value: str, base: str, field: str) -> str:
    """``value`` normalised, or :class:`PathOutsideBase` when it leaves ``base``.

    Pure (no filesystem access): the path as the job would see it, not as this machine does.
    It must be absolute, free of NUL bytes and, once ``posixpath.normpath`` has folded its
    ``.``/``..`` segments, ``base`` itself or below it; ``/opt/ml/processing2`` is not below
    ``/opt/ml/processing``. The server maps such a path to a folder of its own, so a ``..``
    that escaped here would make the server read or write a file of the host.
    """
    shown = repr(value)
    if not value:
        raise PathOutsideBase(f"{field} must not be empty.")
    if "\0" in value:
        raise PathOutsideBase(f"{field} {shown} contains a NUL byte.")
    if not value.startswith("/"):
        raise PathOutsideBase(f"{field} {shown} must be an absolute path (under {base}).")
    normal = posixpath.normpath(value)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")  # POSIX keeps a leading "//"; it is "/" on Linux
    root = posixpath.normpath(base)
    if normal != root and not normal.startswith(root.rstrip("/") + "/"):
        raise PathOutsideBase(f"{field} {shown} is outside {root}.")
    return normal


def confine_name(value: str, field: str) -> str:
    """A single folder name from a request (a channel name): not empty, no ``/``, no NUL,
    not ``.`` or ``..`` (both match ``ChannelName``'s pattern ``[A-Za-z0-9.\\-_]+``)."""
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise PathOutsideBase(
            f"{field} {value!r} is not a folder name (it would leave /opt/ml/input/data)."
        )
    return value
