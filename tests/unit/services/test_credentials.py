"""The credentials file: created once, 0600, and the same keys for everyone who races to it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from sageport.services.credentials import load_or_create

CREATE = """
import sys, time
from pathlib import Path
from sageport.services.credentials import load_or_create
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
print(load_or_create(Path(sys.argv[1]))[0].access_key_id)
"""


def test_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "credentials.json"
    first = load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create(path) == first
    assert json.loads(path.read_text())["keys"][0]["access_key_id"] == first[0].access_key_id
    assert sorted(p.name for p in path.parent.iterdir()) == ["credentials.json"]


def test_processes_creating_it_at_once_all_get_the_winners_keys(tmp_path: Path) -> None:
    """`sageport serve &` and `sageport env` on a first start: both must hold the same keys,
    or every request of the shell that eval'd env is refused."""
    path = tmp_path / "credentials.json"
    start = time.time() + 2.0  # after all of them have imported sageport
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, str(path), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    seen = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert seen == {load_or_create(path)[0].access_key_id}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credentials.json"]
