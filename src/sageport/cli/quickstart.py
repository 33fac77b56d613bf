"""``sageport quickstart``: the first thing a new user runs — train, deploy, predict, clean up.

It starts a server on a scratch port and walks the whole SageMaker loop with plain boto3, the
calls SageMaker SDK code makes underneath, printing each step as it goes:

1. **Train**: a tiny linear-regression script (PyTorch when it is installed, else NumPy) and
   its data go to S3; ``CreateTrainingJob`` with a framework image runs it on this machine;
   the job's status steps are printed as they happen. The script saves the weights and the
   inference code (``code/inference.py``) into the model folder, so ``model.tar.gz`` is ready
   to serve.
2. **Deploy**: ``CreateModel`` / ``CreateEndpointConfig`` / ``CreateEndpoint`` on
   ``ml.m5.large``, waiting for InService.
3. **Predict**: ``InvokeEndpoint`` with JSON, compared with the formula the data came from.
4. **Clean up**: the endpoint, its config and the model are deleted (the training job stays,
   as in SageMaker), and the server stops.

Everything is small (256 samples, a 2-input linear model), so the loop takes seconds.
``SAGEPORT_QUICKSTART_FRAMEWORK=numpy`` (or ``pytorch``) overrides the choice of flavour.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import json
import os
import tarfile
import textwrap
import time
from collections.abc import Callable
from typing import Any

import typer

from sageport.cli.process import ServerProcess
from sageport.cli.serverinfo import running_server
from sageport.settings import Settings

BUCKET = "sageport-quickstart"
ROLE = "arn:aws:iam::{account}:role/SageportExecutionRole"
INSTANCE_TYPE = "ml.m5.large"
TIMEOUT_S = 120.0
FRAMEWORK_ENV = "SAGEPORT_QUICKSTART_FRAMEWORK"

#: (training image, inference image) per flavour; both are AWS framework images that sageport
#: maps to a local Python.
IMAGES = {
    "pytorch": (
        "763104351884.dkr.ecr.{region}.amazonaws.com/pytorch-training:2.1.0-cpu-py310",
        "763104351884.dkr.ecr.{region}.amazonaws.com/pytorch-inference:2.1.0-cpu-py310",
    ),
    "numpy": (
        "683313688378.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "683313688378.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
    ),
}

TRAIN_PY = """
import os, shutil
import numpy as np

x = np.load(os.path.join(os.environ["SM_CHANNEL_TRAINING"], "x.npy"))
y = np.load(os.path.join(os.environ["SM_CHANNEL_TRAINING"], "y.npy"))
model_dir = os.environ["SM_MODEL_DIR"]
if os.environ.get("QUICKSTART_FLAVOUR") == "pytorch":
    import torch

    torch.manual_seed(0)
    layer = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float().reshape(-1, 1)
    for step in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(xt), yt)
        loss.backward()
        opt.step()
        if step % 100 == 99:
            print(f"step {step + 1}: mse {loss.item():.5f}", flush=True)
    w = layer.weight.detach().numpy().reshape(-1).astype(float)
    b = float(layer.bias.item())
else:
    w, b = np.zeros(2), 0.0
    for step in range(500):
        err = x @ w + b - y
        w -= 0.1 * (x.T @ err) / len(x)
        b -= 0.1 * float(err.mean())
        if step % 100 == 99:
            print(f"step {step + 1}: mse {float((err ** 2).mean()):.5f}", flush=True)
np.savez(os.path.join(model_dir, "model.npz"), w=w, b=b)
os.makedirs(os.path.join(model_dir, "code"), exist_ok=True)
shutil.copy(os.path.join(os.path.dirname(__file__), "inference.py"), os.path.join(model_dir, "code"))
print(f"learned w={[round(float(v), 2) for v in w]} b={b:.2f}", flush=True)
"""

INFERENCE_PY = """
import json, os
import numpy as np

def model_fn(model_dir):
    return dict(np.load(os.path.join(model_dir, "model.npz")))

def input_fn(body, content_type):
    return np.asarray(json.loads(body)["instances"], dtype=float)

def predict_fn(x, model):
    return x @ model["w"] + model["b"]

def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction.tolist()}), "application/json"
"""


def _step(title: str, fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = fn()
    typer.echo(f"  ok  {title}  ({(time.perf_counter() - started) * 1000:.0f} ms)")
    return result


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = textwrap.dedent(text).lstrip().encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _npy(array: Any) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def run_quickstart(settings: Settings, port: int = 0) -> int:
    running = running_server(settings)
    if running is not None:  # its own server could not start on the same data folder
        typer.secho(
            f"quickstart starts a server of its own, but one is already running on "
            f"{settings.data_dir} (pid {running['pid']}, {running['endpoint_url']}): stop it, "
            "or run: sageport quickstart --data-dir /tmp/sageport-quickstart",
            fg=typer.colors.RED,
            err=True,
        )
        return 2
    server = ServerProcess(settings.data_dir, port or None, settings.region)
    typer.echo(f"Starting sageport serve on {server.url} (data: {settings.data_dir}) ...")
    started = time.perf_counter()
    try:
        server.start()
    except RuntimeError as exc:
        typer.secho(f"quickstart failed: {exc}", fg=typer.colors.RED, err=True)
        return 1
    flavour = os.environ.get(FRAMEWORK_ENV) or (
        "pytorch" if importlib.util.find_spec("torch") is not None else "numpy"
    )
    if flavour not in IMAGES:
        typer.secho(f"{FRAMEWORK_ENV} must be pytorch or numpy, not {flavour!r}", err=True)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = {"job": f"quickstart-train-{stamp}", "model": f"quickstart-{stamp}"}
    sm: Any = None
    try:
        sm = server.client("sagemaker")
        ident = _step("sts.get_caller_identity", server.client("sts").get_caller_identity)
        typer.echo(f"      account {ident['Account']}, region {server.region}")
        artifacts = _train(server, names["job"], flavour, ident["Account"])
        _deploy(server, names["model"], artifacts, flavour, ident["Account"])
        _predict(server, names["model"])
        typer.echo("\n[4/4] Clean up")
        _clean_up(server, names["model"])
        typer.echo(
            f"\nDone in {time.perf_counter() - started:.1f} s: trained, deployed, predicted, "
            "cleaned up.\nPoint your own boto3 or SageMaker SDK code at sageport with:  "
            'sageport serve &  eval "$(sageport env)"'
        )
        return 0
    except Exception as exc:
        typer.secho(
            f"quickstart failed: {type(exc).__name__}: {exc}", fg=typer.colors.RED, err=True
        )
        _explain(sm, names)
        typer.echo(server.log_tail(), err=True)
        with contextlib.suppress(Exception):
            _clean_up(server, names["model"], echo=False)
        return 1
    finally:
        server.stop()


def _train(server: ServerProcess, job: str, flavour: str, account: str) -> str:
    import numpy as np

    typer.echo(f"\n[1/4] Train a linear model ({'PyTorch' if flavour == 'pytorch' else 'NumPy'})")
    s3 = server.client("s3")
    sm = server.client("sagemaker")
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        _step(f"s3.create_bucket {BUCKET}", lambda: s3.create_bucket(Bucket=BUCKET))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 2))
    y = x @ np.array([3.0, -2.0]) + 0.5 + rng.normal(scale=0.01, size=256)
    for key, body in (("x.npy", _npy(x)), ("y.npy", _npy(y))):
        _step(
            f"s3.put_object data/{key}",
            functools.partial(s3.put_object, Bucket=BUCKET, Key=f"{job}/data/{key}", Body=body),
        )
    source = _tar({"train.py": TRAIN_PY, "inference.py": INFERENCE_PY})
    _step(
        "s3.put_object sourcedir.tar.gz (train.py, inference.py)",
        lambda: s3.put_object(Bucket=BUCKET, Key=f"{job}/source/sourcedir.tar.gz", Body=source),
    )
    image = IMAGES[flavour][0].format(region=server.region)
    _step(
        f"sagemaker.create_training_job {job}",
        lambda: sm.create_training_job(
            TrainingJobName=job,
            AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
            RoleArn=ROLE.format(account=account),
            HyperParameters={
                "sagemaker_program": json.dumps("train.py"),
                "sagemaker_submit_directory": json.dumps(
                    f"s3://{BUCKET}/{job}/source/sourcedir.tar.gz"
                ),
            },
            Environment={"QUICKSTART_FLAVOUR": flavour},
            InputDataConfig=[
                {
                    "ChannelName": "training",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"s3://{BUCKET}/{job}/data/",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            ],
            OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
            ResourceConfig={"InstanceType": INSTANCE_TYPE, "InstanceCount": 1, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 300},
        ),
    )
    typer.echo(f"      image {image}")
    started = time.perf_counter()
    seen = 0
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        desc = sm.describe_training_job(TrainingJobName=job)
        steps = desc.get("SecondaryStatusTransitions") or []
        for t in steps[seen:]:
            typer.echo(f"      {t['Status']}: {t.get('StatusMessage', '')}")
        seen = len(steps)
        if desc["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"training job {job} still {desc['SecondaryStatus']}")
        time.sleep(0.2)
    if desc["TrainingJobStatus"] != "Completed":
        raise RuntimeError(
            f"training job {job} {desc['TrainingJobStatus']}: {desc.get('FailureReason')}"
        )
    for line in _log_lines(server, "/aws/sagemaker/TrainingJobs", f"{job}/")[-3:]:
        typer.echo(f"      | {line}")
    artifacts = str(desc["ModelArtifacts"]["S3ModelArtifacts"])
    typer.echo(
        f"  ok  training job Completed  ({time.perf_counter() - started:.1f} s): {artifacts}"
    )
    return artifacts


def _deploy(server: ServerProcess, name: str, artifacts: str, flavour: str, account: str) -> None:
    typer.echo(f"\n[2/4] Deploy it to an endpoint ({INSTANCE_TYPE})")
    sm = server.client("sagemaker")
    image = IMAGES[flavour][1].format(region=server.region)
    _step(
        f"sagemaker.create_model {name}",
        lambda: sm.create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE.format(account=account),
            PrimaryContainer={
                "Image": image,
                "ModelDataUrl": artifacts,
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                },
            },
        ),
    )
    _step(
        f"sagemaker.create_endpoint_config {name}",
        lambda: sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InstanceType": INSTANCE_TYPE,
                    "InitialInstanceCount": 1,
                }
            ],
        ),
    )
    _step(
        f"sagemaker.create_endpoint {name}",
        lambda: sm.create_endpoint(EndpointName=name, EndpointConfigName=name),
    )
    started = time.perf_counter()
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        desc = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] == "InService":
            break
        if desc["EndpointStatus"] == "Failed":
            raise RuntimeError(f"endpoint {name} Failed: {desc.get('FailureReason')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"endpoint {name} still {desc['EndpointStatus']}")
        time.sleep(0.1)
    typer.echo(f"  ok  endpoint InService  ({time.perf_counter() - started:.1f} s)")


def _predict(server: ServerProcess, name: str) -> None:
    typer.echo("\n[3/4] Predict")
    runtime = server.client("sagemaker-runtime")
    rows = [[1.0, 2.0], [0.0, 0.0], [-1.5, 0.5]]
    resp = _step(
        "sagemaker-runtime.invoke_endpoint (JSON)",
        lambda: runtime.invoke_endpoint(
            EndpointName=name,
            Body=json.dumps({"instances": rows}),
            ContentType="application/json",
            Accept="application/json",
        ),
    )
    predictions = json.loads(resp["Body"].read())["predictions"]
    for row, got in zip(rows, predictions, strict=True):
        want = 3 * row[0] - 2 * row[1] + 0.5
        typer.echo(
            f"      f({row}) = {got:.3f}   (the data's formula 3*x0 - 2*x1 + 0.5 = {want:g})"
        )
        if abs(got - want) > 0.1:
            raise RuntimeError(
                f"the endpoint answered {got} for {row}; the model should give {want}"
            )


def _clean_up(server: ServerProcess, name: str, echo: bool = True) -> None:
    from botocore.exceptions import ClientError

    sm = server.client("sagemaker")
    step: Callable[[str, Callable[[], Any]], Any] = _step if echo else _silent
    try:
        step(f"sagemaker.delete_endpoint {name}", lambda: sm.delete_endpoint(EndpointName=name))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            e["EndpointName"] == name for e in sm.list_endpoints(NameContains=name)["Endpoints"]
        ):
            time.sleep(0.1)
    except ClientError:
        pass  # never created
    for title, call in (
        ("delete_endpoint_config", lambda: sm.delete_endpoint_config(EndpointConfigName=name)),
        ("delete_model", lambda: sm.delete_model(ModelName=name)),
    ):
        with contextlib.suppress(ClientError):
            step(f"sagemaker.{title} {name}", call)


def _silent(title: str, fn: Callable[[], Any]) -> Any:
    return fn()


def _log_lines(server: ServerProcess, group: str, prefix: str) -> list[str]:
    from botocore.exceptions import ClientError

    logs = server.client("logs")
    try:
        streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=prefix)
    except ClientError:
        return []
    return [
        e["message"]
        for s in streams["logStreams"]
        for e in logs.get_log_events(
            logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True
        )["events"]
    ]


def _explain(sm: Any, names: dict[str, str]) -> None:
    """Whatever the server says about the failure, on stderr."""
    if sm is None:
        return
    with contextlib.suppress(Exception):
        job = sm.describe_training_job(TrainingJobName=names["job"])
        if job.get("FailureReason"):
            typer.echo(f"training job: {job['FailureReason']}", err=True)
    with contextlib.suppress(Exception):
        ep = sm.describe_endpoint(EndpointName=names["model"])
        if ep.get("FailureReason"):
            typer.echo(f"endpoint: {ep['FailureReason']}", err=True)
