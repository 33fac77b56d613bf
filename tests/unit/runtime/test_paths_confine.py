"""``runtime.paths.confine``: request paths normalised against their base, without I/O."""

from __future__ import annotations

import pytest

from sageport.runtime.paths import PathOutsideBase, confine, confine_name

BASE = "/opt/ml/processing"
FIELD = "ProcessingInputs[0].S3Input.LocalPath"


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("/opt/ml/processing", "/opt/ml/processing"),  # the base itself
        ("/opt/ml/processing/", "/opt/ml/processing"),
        ("/opt/ml/processing/input/data", "/opt/ml/processing/input/data"),
        ("/opt/ml/processing/a/../b/./c", "/opt/ml/processing/b/c"),  # folds inside
        ("//opt/ml/processing//x", "/opt/ml/processing/x"),  # POSIX "//" is "/" here
    ],
)
def test_paths_inside_are_normalised(value: str, normal: str) -> None:
    assert confine(value, BASE, FIELD) == normal


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("/opt/ml/processing/../../../tmp/x", "is outside /opt/ml/processing"),
        ("/opt/ml/processing/..", "is outside /opt/ml/processing"),
        ("/opt/ml/processing2", "is outside /opt/ml/processing"),  # a sibling, not a child
        ("/opt/ml/processing2/x", "is outside /opt/ml/processing"),
        ("/etc/passwd", "is outside /opt/ml/processing"),
        ("opt/ml/processing/x", "must be an absolute path"),
        ("../x", "must be an absolute path"),
        ("/opt/ml/processing/x\0y", "contains a NUL byte"),
        ("", "must not be empty"),
    ],
)
def test_paths_outside_are_refused_naming_the_field(value: str, rule: str) -> None:
    with pytest.raises(PathOutsideBase) as info:
        confine(value, BASE, FIELD)
    assert str(info.value).startswith(FIELD)
    assert rule in str(info.value)


def test_root_base_only_needs_an_absolute_path() -> None:
    assert confine("/data/../in", "/", "LocalPath") == "/in"
    with pytest.raises(PathOutsideBase):
        confine("data", "/", "LocalPath")


@pytest.mark.parametrize("name", ["train", "a.b", "x-y_z"])
def test_folder_names_kept(name: str) -> None:
    assert confine_name(name, "InputDataConfig[0].ChannelName") == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\0"])
def test_folder_names_that_leave_refused(name: str) -> None:
    with pytest.raises(PathOutsideBase, match=r"InputDataConfig\[0\]\.ChannelName"):
        confine_name(name, "InputDataConfig[0].ChannelName")
