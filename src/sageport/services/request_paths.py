"""Create-time checks of every path a job request names (issue 11: paths are confined).

The server turns these paths into folders of its own (``/opt/ml/...`` into the job's host
folder, a channel name into ``input/data/<name>``), so a ``..`` or a NUL byte that got past
create would make the server itself read or write a host file. Each path is normalised by
:func:`sageport.runtime.paths.confine` and refused here with a ``ValidationException`` that
names the field; the stored spec keeps the path as written. The staging code checks again
where it writes (``scheduler/processing_hosts``, ``scheduler/hosts``, ``storage/transfer``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sageport.errors import ValidationException
from sageport.runtime.paths import PathOutsideBase, confine, confine_name

OPT_ML = "/opt/ml"
PROCESSING = "/opt/ml/processing"


def _job_path(value: Any, field: str, opt_ml_base: str) -> str:
    """An absolute path; one in (or normalising into) ``/opt/ml`` must stay in ``opt_ml_base``.

    Paths elsewhere are the job's own folders (a sandbox binds a fresh one there), so only
    absoluteness and NUL bytes matter for them.
    """
    text = value if isinstance(value, str) else ""
    normal = confine(text, "/", field)
    inside = [p for p in (text, normal) if p == OPT_ML or p.startswith(OPT_ML + "/")]
    return confine(text, opt_ml_base, field) if inside else normal


def check_processing_paths(spec: Mapping[str, Any]) -> None:
    """Processing LocalPaths: absolute, under /opt/ml/processing when under /opt/ml at all,
    never the same twice, and no output inside (or around) another input or output.

    One input may lie inside another, as SageMaker allows: the SDK stages ``code=`` at
    ``/opt/ml/processing/input/code`` next to a user input at ``/opt/ml/processing/input``
    (its documented layout), and the inner input's files are staged into the outer one's
    sub-folder. An output may not overlap anything: it would upload staged input files, or
    the same file twice.
    """
    paths: list[tuple[str, str, bool]] = []  # (field, normalised path, is an output)
    try:
        for i, item in enumerate(spec.get("ProcessingInputs") or []):
            s3 = item.get("S3Input")
            if s3:
                field = f"ProcessingInputs[{i}].S3Input.LocalPath"
                paths.append((field, _job_path(s3.get("LocalPath", ""), field, PROCESSING), False))
        outputs = (spec.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for i, item in enumerate(outputs):
            s3 = item.get("S3Output")
            if s3:
                field = f"ProcessingOutputConfig.Outputs[{i}].S3Output.LocalPath"
                paths.append((field, _job_path(s3.get("LocalPath", ""), field, PROCESSING), True))
    except PathOutsideBase as exc:
        raise ValidationException(str(exc)) from None
    for j, (w1, p1, out1) in enumerate(paths):
        for w2, p2, out2 in paths[j + 1 :]:
            a, b = p1.rstrip("/") + "/", p2.rstrip("/") + "/"
            if a == b:
                raise ValidationException(
                    f"{w1} and {w2} are both {p1}; each input and output needs its own folder."
                )
            if (out1 or out2) and (a.startswith(b) or b.startswith(a)):
                inner, outer = ((w1, p1), (w2, p2)) if a.startswith(b) else ((w2, p2), (w1, p1))
                raise ValidationException(
                    f"{inner[0]} ({inner[1]}) is inside {outer[0]} ({outer[1]}); an output "
                    "folder may not contain, or lie inside, another input or output (only "
                    "inputs may nest, as the SDK's code input does)."
                )


def check_training_paths(spec: Mapping[str, Any]) -> None:
    """Channel names (each becomes ``input/data/<name>``) and the checkpoint and TensorBoard
    LocalPaths (under ``/opt/ml`` they live in the host folder)."""
    try:
        for i, channel in enumerate(spec.get("InputDataConfig") or []):
            confine_name(str(channel.get("ChannelName", "")), f"InputDataConfig[{i}].ChannelName")
        for section in ("CheckpointConfig", "TensorBoardOutputConfig"):
            local = (spec.get(section) or {}).get("LocalPath")
            if local is not None:
                _job_path(local, f"{section}.LocalPath", OPT_ML)
    except PathOutsideBase as exc:
        raise ValidationException(str(exc)) from None
