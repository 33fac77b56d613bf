"""Training-job latency: how much a trivial job costs over running its script with ``python``.

    python bench/job_latency.py [--runs 20] [--sandbox auto|off]

Starts a ``sageport serve`` on loopback and submits, one after the other, ``--runs`` jobs of
a trivial script (it prints ``time.time()``, then writes a tiny model file). For each job it
times, from just before the CreateTrainingJob call:

- ``create``: the CreateTrainingJob response;
- ``code_start``: the script's first line (the time it prints, against this machine's clock,
  so the server's and the job's clocks are the same clock);
- ``completed``: DescribeTrainingJob says ``Completed`` (polled every 10 ms) with the
  ``model.tar.gz`` stored (checked with HeadObject afterwards).

The same script run with ``python`` directly gives the baseline (``code_start`` and exit).
Prints a table of medians and p90s and writes ``bench/results/job_latency.json``.
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from sageport.cli.process import ServerProcess

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310"
BUCKET = "bench-jobs"
SCRIPT = """\
import time
print("FIRST", repr(time.time()), flush=True)
import os
with open(os.path.join(os.environ.get("SM_MODEL_DIR", "."), "model.txt"), "w") as f:
    f.write("tiny")
"""
AIMS_MS = {"create": 20.0, "code_start": 250.0, "overhead": 500.0}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(values),
        "p90_ms": percentile(values, 0.9),
        "min_ms": min(values),
    }


def source_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = SCRIPT.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def first_line_time(lines: list[str]) -> float:
    for line in lines:
        if line.startswith("FIRST "):
            return float(line.split()[1])
    raise RuntimeError(f"the script's first line is missing from {lines!r}")


def run_job(server: ServerProcess, sm: Any, s3: Any, logs: Any, name: str) -> dict[str, float]:
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::000000000000:role/BenchRole",
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"s3://{BUCKET}/source/sourcedir.tar.gz"',
        },
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    t0 = time.time()
    sm.create_training_job(**request)
    t_create = time.time()
    while True:
        job = sm.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.01)
    t_done = time.time()
    if job["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"{name}: {job['TrainingJobStatus']}: {job.get('FailureReason')}")
    s3.head_object(Bucket=BUCKET, Key=f"output/{name}/output/model.tar.gz")
    stream = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=stream["logStreams"][0]["logStreamName"],
        startFromHead=True,
    )["events"]
    first = first_line_time([e["message"] for e in events])
    return {
        "create": (t_create - t0) * 1000,
        "code_start": (first - t0) * 1000,
        "completed": (t_done - t0) * 1000,
    }


def run_bare(script: Path, model_dir: Path) -> dict[str, float]:
    env = {**os.environ, "SM_MODEL_DIR": str(model_dir)}
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, check=True
    )
    t_done = time.time()
    first = first_line_time(out.stdout.splitlines())
    return {"code_start": (first - t0) * 1000, "completed": (t_done - t0) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sandbox", choices=("auto", "off"), default="auto")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "job_latency.json"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sageport-bench-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (data / "sageport.toml").write_text(f'sandbox = "{args.sandbox}"\n')
        server = ServerProcess(data)
        server.start()
        try:
            sm, s3, logs = server.client("sagemaker"), server.client("s3"), server.client("logs")
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="source/sourcedir.tar.gz", Body=source_tar())
            run_job(server, sm, s3, logs, "warmup")  # first-use costs (imports, tables) excluded
            jobs = [run_job(server, sm, s3, logs, f"lat-{i:03d}") for i in range(args.runs)]
        finally:
            server.stop()
        script = Path(tmp) / "train.py"
        script.write_text(SCRIPT)
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        run_bare(script, model_dir)
        bare = [run_bare(script, model_dir) for _ in range(args.runs)]

    result: dict[str, Any] = {
        "runs": args.runs,
        "sandbox": args.sandbox,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "job": {k: summary([j[k] for j in jobs]) for k in ("create", "code_start", "completed")},
        "bare_python": {k: summary([b[k] for b in bare]) for k in ("code_start", "completed")},
    }
    overhead = [j["completed"] - statistics.median(b["completed"] for b in bare) for j in jobs]
    result["overhead"] = summary(overhead)
    result["aims_ms"] = AIMS_MS
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"{args.runs} runs, sandbox={args.sandbox}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    print(f"{'measure (ms from the create call)':<40}{'median':>10}{'p90':>10}{'aim':>10}")
    rows = [
        ("CreateTrainingJob answered", result["job"]["create"], AIMS_MS["create"]),
        ("job: script's first line", result["job"]["code_start"], AIMS_MS["code_start"]),
        ("job: Completed, model stored", result["job"]["completed"], None),
        ("bare python: first line", result["bare_python"]["code_start"], None),
        ("bare python: exited", result["bare_python"]["completed"], None),
        ("overhead (job - bare python)", result["overhead"], AIMS_MS["overhead"]),
    ]
    for label, stats, aim in rows:
        aim_text = f"< {aim:.0f}" if aim else ""
        print(f"{label:<40}{stats['median_ms']:>10.1f}{stats['p90_ms']:>10.1f}{aim_text:>10}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
