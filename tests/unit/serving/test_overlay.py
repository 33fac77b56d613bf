"""code/requirements.txt overlays: installed once per file, reused, nothing half-done left."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from sageport.serving import overlay


def wheel(folder: Path, name: str = "sageport_unit_probe", value: str = "one") -> Path:
    """A minimal pure-Python wheel (no build backend, no network)."""
    import base64
    import hashlib

    dist = f"{name}-0.1.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    digest = {
        p: base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
        for p, d in files.items()
    }
    record = [f"{p},sha256={digest[p]},{len(d)}" for p, d in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for p, d in files.items():
            archive.writestr(p, d)
    return path


def test_a_local_wheel_is_installed_once_relative_to_the_code_folder(tmp_path: Path) -> None:
    code = tmp_path / "code"
    (code / "wheels").mkdir(parents=True)
    wheel(code / "wheels")
    (code / "requirements.txt").write_text("./wheels/sageport_unit_probe-0.1-py3-none-any.whl\n")
    root = tmp_path / "overlays"
    target = overlay.ensure_overlay(code, root)
    assert target is not None
    assert target.parent == root
    assert (target / overlay.MARKER).exists()
    assert (target / "sageport_unit_probe" / "__init__.py").exists()
    stamp = (target / overlay.MARKER).stat().st_mtime_ns
    assert overlay.ensure_overlay(code, root) == target  # reused, not reinstalled
    assert (target / overlay.MARKER).stat().st_mtime_ns == stamp
    probe = textwrap.dedent(
        f"""
        from pathlib import Path
        from sageport.serving import overlay
        overlay.activate(Path({str(target)!r}))
        import sageport_unit_probe
        print(sageport_unit_probe.VALUE)
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "one"


def test_a_failed_install_raises_with_pips_output_and_leaves_nothing(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text("./no-such-file-0.1-py3-none-any.whl\n")
    root = tmp_path / "overlays"
    with pytest.raises(RuntimeError, match=r"pip install -r .* failed"):
        overlay.ensure_overlay(code, root)
    assert [p for p in root.iterdir() if p.is_dir()] == []


def test_no_file_or_an_empty_one_means_no_overlay(tmp_path: Path) -> None:
    assert overlay.ensure_overlay(tmp_path, tmp_path / "o") is None
    (tmp_path / "requirements.txt").write_text("\n")
    assert overlay.ensure_overlay(tmp_path, tmp_path / "o") is None
    assert overlay.ensure_overlay(None, tmp_path / "o") is None
