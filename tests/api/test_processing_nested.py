"""Processing LocalPaths that nest: an input inside another input is SageMaker's own layout.

The SDK's documented example gives ``ProcessingInput(destination="/opt/ml/processing/input")``
and ``code="preprocess.py"``, which it stages at ``/opt/ml/processing/input/code``: both are
staged, the inner one into the outer one's sub-folder. The same LocalPath twice, or an output
that contains or lies inside another input or output, is refused at create, naming both fields.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from processing_helpers import CODE_DIR, objects, processing_request, s3_input, s3_output, wait
from server_helpers import apply_sageport_env, aws_error
from training_helpers import BUCKET, put_objects, unique

from sageport.cli.process import ServerProcess

#: reads every input, lists its own folder, writes what it found
NESTED = """
    import json, os
    found = {}
    for root in ("/opt/ml/processing/input", "/data/in"):
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                found[path] = open(path).read() if name.endswith(".txt") else "code"
    os.makedirs("/opt/ml/processing/output", exist_ok=True)
    with open("/opt/ml/processing/output/found.json", "w") as f:
        json.dump(found, f)
"""


def test_inputs_nested_in_inputs_are_all_staged(server: ServerProcess) -> None:
    name = unique("nested")
    data = put_objects(server, f"{name}/data", {"rows.txt": "outer", "deep/more.txt": "deeper"})
    outer = put_objects(server, f"{name}/bind", {"a.txt": "bind outer"})
    inner = put_objects(server, f"{name}/bind-inner", {"b.txt": "bind inner"})
    result = f"s3://{BUCKET}/{name}/result"
    request = processing_request(
        server,
        name,
        NESTED,
        # the code input (CODE_DIR, inside the first) comes last, as the SDK sends it; the
        # inner bind comes before its outer one, so order in the request does not matter
        inputs=[
            s3_input("data", data, "/opt/ml/processing/input"),
            s3_input("inner", inner, "/data/in/sub"),
            s3_input("outer", outer, "/data/in"),
        ],
        outputs=[s3_output("found", result, "/opt/ml/processing/output")],
    )
    server.client("sagemaker").create_processing_job(**request)
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    found = json.loads(objects(server, f"{name}/result")["found.json"])
    assert found == {
        "/opt/ml/processing/input/rows.txt": "outer",
        "/opt/ml/processing/input/deep/more.txt": "deeper",
        f"{CODE_DIR}/process.py": "code",
        "/data/in/a.txt": "bind outer",
        "/data/in/sub/b.txt": "bind inner",
    }
    # Describe answers the members AWS fills in (the SDK rebuilds its inputs from them)
    first = job["ProcessingInputs"][0]
    assert first["AppManaged"] is False
    assert first["S3Input"]["S3DataDistributionType"] == "FullyReplicated"
    assert first["S3Input"]["S3CompressionType"] == "None"
    assert job["ProcessingOutputConfig"]["Outputs"][0]["AppManaged"] is False


@pytest.mark.parametrize(
    ("inputs", "outputs", "fields"),
    [
        pytest.param(
            ["/opt/ml/processing/data", "/opt/ml/processing/data/"],
            [],
            ("ProcessingInputs[0]", "ProcessingInputs[1]", "are both"),
            id="same-input-twice",
        ),
        pytest.param(
            ["/opt/ml/processing/data"],
            ["/opt/ml/processing/data"],
            ("ProcessingInputs[0]", "ProcessingOutputConfig.Outputs[0]", "are both"),
            id="output-is-an-input",
        ),
        pytest.param(
            ["/opt/ml/processing/data"],
            ["/opt/ml/processing/data/out"],
            ("ProcessingOutputConfig.Outputs[0]", "is inside", "ProcessingInputs[0]"),
            id="output-inside-input",
        ),
        pytest.param(
            ["/opt/ml/processing/out/in"],
            ["/opt/ml/processing/out"],
            ("ProcessingInputs[0]", "is inside", "ProcessingOutputConfig.Outputs[0]"),
            id="input-inside-output",
        ),
        pytest.param(
            [],
            ["/opt/ml/processing/out", "/opt/ml/processing/out/more"],
            ("ProcessingOutputConfig.Outputs[1]", "is inside", "ProcessingOutputConfig.Outputs[0]"),
            id="output-inside-output",
        ),
    ],
)
def test_overlapping_paths_with_an_output_or_twice_the_same_are_refused(
    server: ServerProcess, inputs: list[str], outputs: list[str], fields: tuple[str, ...]
) -> None:
    name = unique("overlap")
    uri = f"s3://{BUCKET}/{name}/x"
    request = processing_request(
        server,
        name,
        "print('never runs')",
        inputs=[s3_input(f"in{i}", uri, p) for i, p in enumerate(inputs)],
        outputs=[s3_output(f"out{i}", uri, p) for i, p in enumerate(outputs)] or None,
    )
    with aws_error("ValidationException") as info:
        server.client("sagemaker").create_processing_job(**request)
    message = info.value.response["Error"]["Message"]
    positions = [message.index(f) for f in fields]
    assert positions == sorted(positions), message
    with aws_error("ValidationException"):
        server.client("sagemaker").describe_processing_job(ProcessingJobName=name)


PREPROCESS = """
    import os
    rows = open("/opt/ml/processing/input/rows.csv").read().split()
    train, test = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    for split, part in (("train", train), ("test", test)):
        os.makedirs(f"/opt/ml/processing/{split}", exist_ok=True)
        with open(f"/opt/ml/processing/{split}/{split}.csv", "w") as f:
            f.write("\\n".join(part))
    print("code staged with the input:", sorted(os.listdir("/opt/ml/processing/input")))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("sagemaker") is None, reason="needs the SageMaker SDK 2.x"
)
def test_sklearn_processor_documented_layout(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The SDK's SKLearnProcessor example: the input at /opt/ml/processing/input, code= beside
    it at .../input/code. The scikit-learn image maps to the server's interpreter; the script
    needs only the standard library, so this runs where scikit-learn is not installed."""
    apply_sageport_env(server, monkeypatch)
    import sagemaker
    from sagemaker.processing import ProcessingInput, ProcessingOutput
    from sagemaker.sklearn.processing import SKLearnProcessor

    name = unique("sdk-sklearn")
    data = put_objects(server, f"{name}/raw", {"rows.csv": b"1\n2\n3\n4\n"})
    code = tmp_path / "preprocess.py"
    code.write_text(textwrap.dedent(PREPROCESS))
    processor = SKLearnProcessor(
        framework_version="1.2-1",
        role="arn:aws:iam::000000000000:role/SageMakerRole",
        instance_type="ml.m5.xlarge",
        instance_count=1,
        sagemaker_session=sagemaker.Session(),
        base_job_name="sdk-sklearn",
    )
    processor.run(
        code=str(code),
        inputs=[ProcessingInput(source=data, destination="/opt/ml/processing/input")],
        outputs=[
            ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
            ProcessingOutput(output_name="test", source="/opt/ml/processing/test"),
        ],
        wait=True,
        logs=False,
    )
    job: dict[str, Any] = processor.latest_job.describe()
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    paths = [i["S3Input"]["LocalPath"] for i in job["ProcessingInputs"]]
    assert paths == ["/opt/ml/processing/input", "/opt/ml/processing/input/code"]
    got = {}
    for out in job["ProcessingOutputConfig"]["Outputs"]:
        bucket, prefix = out["S3Output"]["S3Uri"].removeprefix("s3://").split("/", 1)
        got.update(objects(server, prefix, bucket=bucket))
    assert got == {"train.csv": b"1\n2", "test.csv": b"3\n4"}
