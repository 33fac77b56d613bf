"""``code/requirements.txt`` installed into a per-model overlay, not into sageport's Python.

The toolkit runs ``pip install -r /opt/ml/model/code/requirements.txt`` into the container's
Python; here many models share one interpreter installation, so each requirements file gets
its own ``pip install --target`` folder, keyed by the file's SHA-256 and reused by every
instance and restart of any model with the same requirements. A file lock serialises
concurrent installs (several worker processes or instances start at once); a ``.complete``
marker makes a half-finished install count as absent. The folder is then put on ``sys.path``
(after the code folder, before site-packages) of the model-server process only.

Where overlays live: ``SAGEPORT_OVERLAY_DIR`` (``ServerConfig.overlay_root``). The endpoint
runner sets it to ``<data folder>/overlays`` and binds that folder into the sandbox, so every
instance and every restart of an endpoint — and every other endpoint with the same file —
reuses one install; without it (a model server run by hand) it is ``~/.cache/sageport/overlays``.
pip runs in the code folder, so a local path in ``requirements.txt`` (``./wheels/x.whl``) is
relative to the file, as a user reading the file expects. The key is the file's text only: a
local wheel rebuilt under the same name needs a changed line (a version) to be reinstalled.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

LOG = logging.getLogger(__name__)
MARKER = ".complete"


def default_root() -> Path:
    return Path.home() / ".cache" / "sageport" / "overlays"


def overlay_for(requirements: Path, root: Path) -> Path:
    """The overlay folder for ``requirements`` (its content hash, not its path)."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    return root / digest


def ensure_overlay(code_dir: Path | None, root: Path | None) -> Path | None:
    """Install ``code_dir/requirements.txt`` once and return its folder (None if no file).

    Raises ``RuntimeError`` with pip's output when the install fails, so ``/ping`` reports it.
    """
    if code_dir is None:
        return None
    requirements = code_dir / "requirements.txt"
    if not requirements.is_file() or not requirements.read_text().strip():
        return None
    target = overlay_for(requirements, root or default_root())
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / MARKER).exists():
            _install(requirements, target)
    return target


def activate(overlay: Path) -> None:
    """Put ``overlay`` on this process's import path, ahead of site-packages."""
    if str(overlay) not in sys.path:
        sys.path.insert(0, str(overlay))


def _install(requirements: Path, target: Path) -> None:
    """pip into a scratch folder, then rename: a failed install leaves no half overlay."""
    LOG.info("installing %s into %s", requirements, target)
    scratch = target.with_name(f"{target.name}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--target",
            str(scratch),
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=requirements.parent,
    )
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise RuntimeError(
            f"pip install -r {requirements} failed (exit {result.returncode}):\n"
            f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    (scratch / MARKER).write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
