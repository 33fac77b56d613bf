"""The interpreter table, its probe (real and fake), and what a job that could not import says."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from sageport.runtime.images import FRAMEWORKS, resolve_image
from sageport.runtime.interpreters import (
    PROBED_MODULES,
    FakeProbe,
    SubprocessProbe,
    family_table,
    log_in_background,
    missing_module,
    missing_module_note,
    pip_name,
)

PT = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310"
SK = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SERVE = "/srv/python"
TORCH = "/opt/venvs/torch/bin/python"


# -- the real probe ------------------------------------------------------------------------


def test_the_subprocess_probe_finds_what_this_interpreter_has() -> None:
    report = SubprocessProbe(modules=("json", "no_such_module_xyz")).probe(sys.executable)
    assert report.error == ""
    assert report.modules == {"json": True, "no_such_module_xyz": False}
    assert report.version == ".".join(map(str, sys.version_info[:3]))


def test_the_subprocess_probe_locates_without_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """find_spec only: a package whose import has side effects is found, and not run."""
    pkg = tmp_path / "loud_pkg"
    pkg.mkdir()
    marker = tmp_path / "imported"
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert SubprocessProbe(modules=("loud_pkg",)).probe(sys.executable).modules == {
        "loud_pkg": True
    }
    assert not marker.exists()


def test_the_subprocess_probe_says_why_it_could_not_ask(tmp_path: Path) -> None:
    probe = SubprocessProbe()
    assert probe.probe(str(tmp_path / "missing")).error == "not found"
    not_python = tmp_path / "not-python"
    not_python.write_text("#!/bin/sh\necho hello\n")
    not_python.chmod(0o755)
    assert probe.probe(str(not_python)).error.startswith("not a usable Python")
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert probe.probe(str(plain)).error == "not executable"


def test_the_subprocess_probe_asks_each_interpreter_once(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\necho x >> {counter}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    probe = SubprocessProbe()
    first = probe.probe(str(wrapper))
    assert probe.probe(str(wrapper)) is first
    assert counter.read_text().count("x") == 1


# -- the table -----------------------------------------------------------------------------


def test_every_family_maps_to_the_default_or_its_images_key() -> None:
    probe = FakeProbe({SERVE: ["sklearn"], TORCH: ["torch"]})
    rows = family_table({"pytorch": TORCH, "my-repo": SERVE}, SERVE, probe)
    assert [r.family for r in rows] == [*FRAMEWORKS, "my-repo"]
    by = {r.family: r for r in rows}
    assert (by["pytorch"].python, by["pytorch"].mapped_by) == (TORCH, "pytorch")
    assert (by["tensorflow"].python, by["tensorflow"].mapped_by) == (SERVE, None)
    assert by["pytorch"].missing == ()
    assert by["tensorflow"].missing == ("tensorflow",)
    assert by["sklearn"].missing == ()
    assert by["my-repo"].expects == ()
    assert sorted(probe.calls) == sorted([SERVE, TORCH])  # one probe per interpreter


def test_a_row_in_json_and_in_the_log() -> None:
    rows = family_table({"pytorch:2.1.0": "/gone"}, SERVE, FakeProbe({SERVE: ["torch"]}))
    by = {r.family: r for r in rows}
    data = by["pytorch"].to_json()
    assert data["python"] == SERVE
    assert data["modules"] == {m: m == "torch" for m in PROBED_MODULES}
    assert data["missing"] == []
    assert data["error"] is None
    line = by["tensorflow"].log_line()
    assert line.startswith(f"tensorflow images -> {SERVE} (the interpreter of sageport serve")
    assert "torch yes, tensorflow no" in line
    assert line.endswith("MISSING for this family: tensorflow")
    gone = by["pytorch:2.1.0"]
    assert gone.expects == ("torch",)
    assert gone.missing == ("torch",)
    assert gone.to_json()["error"] == "not found"
    assert gone.log_line().endswith("images['pytorch:2.1.0'] in sageport.toml): not found")


def test_the_table_is_logged_from_a_thread(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.interpreters")
    with caplog.at_level(logging.INFO, logger="test.interpreters"):
        thread = log_in_background({}, SERVE, FakeProbe({SERVE: ["torch"]}), logger)
        thread.join(10)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len(FRAMEWORKS)
    assert lines[0].startswith(f"interpreter: pytorch images -> {SERVE}")


# -- a job that could not import -----------------------------------------------------------


def test_the_missing_module_is_the_last_one_named() -> None:
    tail = [
        "Traceback (most recent call last):",
        '  File "train.py", line 1, in <module>',
        "ModuleNotFoundError: No module named 'torch'",
        "During handling of the above exception, another exception occurred:",
        "ModuleNotFoundError: No module named 'torchvision.models'",
    ]
    assert missing_module(tail) == "torchvision.models"
    assert missing_module(["ValueError: No module named 'x' is not ours"]) is None
    assert pip_name("torchvision.models") == "torchvision"
    assert pip_name("sklearn.linear_model") == "scikit-learn"
    assert pip_name("google.protobuf") == "protobuf"


def test_the_note_names_the_default_interpreter_and_the_setting() -> None:
    note = missing_module_note("sklearn", resolve_image(SK, {}, default_python=SERVE))
    first, second = note.splitlines()
    assert first == (
        f'Interpreter "{SERVE}" (image family sklearn: the interpreter of sageport serve, '
        "as nothing in [images] maps it)"
    )
    assert f"{SERVE} -m pip install scikit-learn" in second
    assert 'sageport.toml: [images] "sklearn" = "/path/to/venv/bin/python"' in second


def test_the_note_names_the_images_key_that_chose_the_interpreter() -> None:
    runtime = resolve_image(PT, {"pytorch:2.1.0": TORCH}, default_python=SERVE)
    note = missing_module_note("transformers", runtime)
    assert note.startswith(
        f"Interpreter \"{TORCH}\" (image family pytorch, mapped by images['pytorch:2.1.0'])"
    )
    assert f"{TORCH} -m pip install transformers" in note
    assert '[images] "pytorch:2.1.0" = ' in note
    custom = resolve_image("registry.example/my-repo:1", {"registry.example/my-repo:1": TORCH})
    assert "image family custom, mapped by images['registry.example/my-repo:1']" in (
        missing_module_note("x", custom)
    )


def test_a_local_image_is_told_to_name_another_interpreter() -> None:
    note = missing_module_note("xgboost", resolve_image(f"local:{TORCH}", {}))
    assert note.startswith(f'Interpreter "{TORCH}" (named by the image local:{TORCH})')
    assert f"{TORCH} -m pip install xgboost" in note
    assert "local:/path/to/python" in note
