"""The README's two commands, run as a newcomer runs them: from a plain shell, with nothing
activated and nothing preinstalled, so a missing install step fails here rather than on a
user's machine.

Each test starts its shell with ``env -i``: a HOME of its own (or the real one for the test
command, whose .venv lives in the checkout), the system PATH and so the system's python3. pip
keeps the machine's download cache (PIP_CACHE_DIR), which only makes the downloads faster.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path("/usr/bin/python3").exists(), reason="needs the system's /usr/bin/python3"
    ),
]


def readme_command(heading: str) -> str:
    """The first ```bash block after the README paragraph that starts with ``heading``."""
    text = (ROOT / "README.md").read_text()
    start = text.index(heading)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block, f"no bash block after {heading!r} in README.md"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, "the README's command must be one copy-pasteable line"
    return lines[0]


def plain_shell(
    command: str, home: Path, timeout: float, login: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {
        "HOME": str(home),
        "PATH": SYSTEM_PATH,
        "LANG": "C.UTF-8",
        "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip"),
    }
    flags = "-lc" if login else "-c"
    return subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "bash", flags, command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_readme_install_command_then_quickstart_from_a_new_shell(tmp_path: Path) -> None:
    command = readme_command("Install and run the main job")
    assert "sudo" not in command.split("&&")[0], "the command must work where sudo is absent"
    home = tmp_path / "home"
    home.mkdir()
    done = plain_shell(command, home, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "installed: sageport " in done.stdout
    assert "Done in" in done.stdout, done.stdout[-2000:]
    venv_python = home / ".sageport-venv" / "bin" / "python"
    base = subprocess.run(
        [str(venv_python), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert base.stdout.strip() == "/usr", "the install must use the system's python3"

    # a new login shell finds `sageport` on PATH, and the SDK 2.x is where the README says
    again = plain_shell(
        "command -v sageport && sageport --version && sageport quickstart", home, 300, login=True
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.startswith(f"{home}/.local/bin/sageport\n")
    assert "Done in" in again.stdout
    sdk = plain_shell(
        f"{venv_python} -c 'import sagemaker, boto3; print(sagemaker.__version__)'", home, 120
    )
    assert sdk.returncode == 0, sdk.stderr[-2000:]
    assert sdk.stdout.strip().splitlines()[-1].startswith("2.")

    # installing again changes nothing and adds no second PATH line
    twice = plain_shell("./scripts/install", home, 600)
    assert twice.returncode == 0, twice.stderr[-2000:]
    assert (home / ".profile").read_text().count(".local/bin") == 1


def test_a_brand_new_venv_with_no_extras_imports_and_answers_version(tmp_path: Path) -> None:
    """The bare package, nothing preinstalled: every runtime dependency must be declared."""
    venv = tmp_path / "bare"
    made = plain_shell(
        f"/usr/bin/python3 -m venv {venv} && {venv}/bin/pip install -q --progress-bar off ."
        f" && {venv}/bin/python -c 'import sageport.api.app, sageport.cli.main'"
        f" && {venv}/bin/sageport --version",
        tmp_path,
        timeout=600,
    )
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-3000:]
    assert re.search(r"^sageport \d+\.\d+", made.stdout, re.M), made.stdout


def test_the_readme_test_command_from_a_plain_shell() -> None:
    """Bounded to collection: the checks, the .venv it makes (or reuses), and pytest finding
    every test, without an activated environment."""
    command = readme_command("Install what the tests need")
    done = plain_shell(f"{command} --collect-only", Path.home(), timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in ("ruff check", "ruff format --check", "mypy --strict", "pytest"):
        assert f"==> {step}" in done.stderr
    collected = re.search(r"(\d+) tests collected", done.stdout)
    assert collected, done.stdout[-2000:]
    assert int(collected.group(1)) > 900
    assert (ROOT / ".venv" / ".installed").exists(), "the command must install into .venv"
