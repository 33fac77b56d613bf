"""Which channel files a job's command names (staged as the job's own copies, not links)."""

from __future__ import annotations

from sageport.runtime.paths import command_channel_files


def test_model_trainers_driver_is_found_in_its_shell_line() -> None:
    line = (
        "chmod +x /opt/ml/input/data/sm_drivers/sm_train.sh "
        "&& /opt/ml/input/data/sm_drivers/sm_train.sh"
    )
    assert command_channel_files(["/bin/bash", "-c", line]) == {
        "sm_drivers": frozenset({"sm_train.sh"})
    }


def test_nested_files_quotes_and_several_channels() -> None:
    words = [
        "python3",
        "/opt/ml/input/data/code/pkg/./run.py",
        "--config='/opt/ml/input/data/cfg/a.yaml';",
    ]
    assert command_channel_files(words) == {
        "code": frozenset({"pkg/run.py"}),
        "cfg": frozenset({"a.yaml"}),
    }


def test_paths_that_leave_the_channel_or_name_none_are_ignored() -> None:
    words = ["/opt/ml/input/data/x/../../y", "/opt/ml/input/data/only-a-channel", "/opt/ml/code/a"]
    assert command_channel_files(words) == {}
