"""Processing jobs that really run, driven with boto3 against a live server.

Each test submits a job the way ``ScriptProcessor.run(code=...)`` does (the script staged as
input ``code`` at ``/opt/ml/processing/input/code``, ``python3`` as the entrypoint) and
checks what a SageMaker user would: the status, ``FailureReason``, the logs in
``/aws/sagemaker/ProcessingJobs`` and the outputs in S3. Tests that need a server without
a sandbox run one of their own.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from processing_helpers import (
    log_lines,
    log_text,
    objects,
    processing_request,
    s3_input,
    s3_output,
    submit,
    wait,
    wait_log,
)
from training_helpers import BUCKET, put_objects, unique

from sageport.cli.process import ServerProcess

HAS_BWRAP = shutil.which("bwrap") is not None


def _error(call: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return dict(info.value.response["Error"])


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that runs jobs without bubblewrap, as on a machine that lacks it."""
    data = tmp_path_factory.mktemp("nosandbox")
    (data / "sageport.toml").write_text('sandbox = "off"\n')
    proc = ServerProcess(data)
    proc.start()
    yield proc
    proc.stop()


REPORT = """
    import json, os, sys
    base = "/opt/ml/processing"
    files = sorted(
        os.path.relpath(os.path.join(d, f), base + "/input/data")
        for d, _, fs in os.walk(base + "/input/data") for f in fs
    )
    report = {
        "files": files,
        "first": open(base + "/input/data/a.csv").read(),
        "argv": sys.argv[1:],
        "env": os.environ.get("MODE"),
        "job": json.load(open("/opt/ml/config/processingjobconfig.json")),
        "resources": json.load(open("/opt/ml/config/resourceconfig.json")),
    }
    os.makedirs(base + "/output/nested", exist_ok=True)
    with open(base + "/output/report.json", "w") as f:
        json.dump(report, f)
    with open(base + "/output/nested/rows.csv", "w") as f:
        f.write("x\\n1\\n")
    print("processed", len(files), "files")
"""


def test_inputs_staged_outputs_uploaded_config_written(server: ServerProcess) -> None:
    name = unique("proc")
    data = put_objects(server, f"{name}/data", {"a.csv": b"1,2\n", "sub/b.csv": b"3,4\n"})
    submit(
        server,
        name,
        REPORT,
        inputs=[s3_input("data", data, "/opt/ml/processing/input/data")],
        outputs=[s3_output("report", f"s3://{BUCKET}/{name}/out", "/opt/ml/processing/output")],
        arguments=["--threshold", "0.5"],
        Environment={"MODE": "full"},
    )
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert job["Environment"] == {"MODE": "full"}
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert job["AppSpecification"]["ContainerArguments"] == ["--threshold", "0.5"]
    assert job["CreationTime"] <= job["ProcessingStartTime"] <= job["ProcessingEndTime"]
    assert job["ProcessingJobArn"].endswith(f":processing-job/{name}")

    out = objects(server, f"{name}/out/")
    assert out["nested/rows.csv"] == b"x\n1\n"
    report = json.loads(out["report.json"])
    assert report["files"] == ["a.csv", "sub/b.csv"]
    assert report["first"] == "1,2\n"
    assert report["argv"] == ["--threshold", "0.5"]
    assert report["env"] == "full"
    assert report["job"]["ProcessingJobName"] == name
    assert report["job"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] == data
    assert report["resources"] == {
        "current_host": "algo-1",
        "hosts": ["algo-1"],
        "network_interface_name": "eth0",
    }
    assert "processed 2 files" in log_lines(server, name)


def test_single_object_input_and_manifest_file(server: ServerProcess) -> None:
    name = unique("proc-obj")
    base = put_objects(
        server, f"{name}/data", {"one.txt": b"one", "two.txt": b"two", "skip.txt": b"no"}
    )
    manifest = json.dumps([{"prefix": base}, "one.txt", "two.txt"]).encode()
    put_objects(server, f"{name}/manifest", {"list.manifest": manifest})
    script = """
        import os
        for d in ("single", "listed"):
            print(d, sorted(os.listdir("/opt/ml/processing/" + d)))
    """
    submit(
        server,
        name,
        script,
        inputs=[
            s3_input("single", base + "one.txt", "/opt/ml/processing/single"),
            s3_input(
                "listed",
                f"s3://{BUCKET}/{name}/manifest/list.manifest",
                "/opt/ml/processing/listed",
                S3DataType="ManifestFile",
            ),
        ],
    )
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    lines = log_lines(server, name)
    assert "single ['one.txt']" in lines
    assert "listed ['one.txt', 'two.txt']" in lines


@pytest.mark.skipif(not HAS_BWRAP, reason="needs bubblewrap")
def test_local_paths_outside_opt_ml_work_in_the_sandbox(server: ServerProcess) -> None:
    name = unique("proc-anywhere")
    data = put_objects(server, f"{name}/data", {"in.txt": b"hello"})
    script = """
        import os
        text = open("/data/in/in.txt").read()
        os.makedirs("/results/deep", exist_ok=True)
        open("/results/deep/out.txt", "w").write(text.upper())
    """
    submit(
        server,
        name,
        script,
        inputs=[s3_input("data", data, "/data/in")],
        outputs=[s3_output("res", f"s3://{BUCKET}/{name}/res/", "/results")],
    )
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert objects(server, f"{name}/res/") == {"deep/out.txt": b"HELLO"}


def test_without_a_sandbox_opt_ml_paths_still_work(bare_server: ServerProcess) -> None:
    server = bare_server
    name = unique("proc-bare")
    data = put_objects(server, f"{name}/data", {"in.txt": b"abc"})
    script = """
        import os, sys
        text = open(sys.argv[1] + "/in.txt").read()
        open(sys.argv[2] + "/out.txt", "w").write(text[::-1])
    """
    submit(
        server,
        name,
        script,
        inputs=[s3_input("data", data, "/opt/ml/processing/input/data")],
        outputs=[s3_output("out", f"s3://{BUCKET}/{name}/out", "/opt/ml/processing/output")],
        # without a sandbox, /opt/ml paths in arguments and Environment are rewritten to
        # the job's folder; paths hard-coded inside the script are not
        arguments=["/opt/ml/processing/input/data", "/opt/ml/processing/output"],
    )
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason") or log_text(
        server, name
    )
    assert objects(server, f"{name}/out/") == {"out.txt": b"cba"}


def test_without_a_sandbox_a_path_outside_opt_ml_fails_saying_how_to_fix_it(
    bare_server: ServerProcess,
) -> None:
    server = bare_server
    name = unique("proc-nobind")
    data = put_objects(server, f"{name}/data", {"in.txt": b"abc"})
    submit(server, name, "print('never')\n", inputs=[s3_input("data", data, "/data/in")])
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "/data/in" in job["FailureReason"]
    assert "bubblewrap" in job["FailureReason"]
    assert "never" not in log_lines(server, name)


def test_continuous_outputs_upload_while_the_job_runs(server: ServerProcess) -> None:
    name = unique("proc-cont")
    script = """
        import time
        open("/opt/ml/processing/checkpoints/step-1.txt", "w").write("1")
        print("wrote step 1", flush=True)
        time.sleep(60)
    """
    submit(
        server,
        name,
        script,
        outputs=[
            s3_output(
                "ckpt", f"s3://{BUCKET}/{name}/ckpt", "/opt/ml/processing/checkpoints", "Continuous"
            )
        ],
    )
    sm = server.client("sagemaker")
    deadline = time.monotonic() + 30
    while not objects(server, f"{name}/ckpt/"):
        assert time.monotonic() < deadline, log_text(server, name)
        time.sleep(0.1)
    assert sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] == "InProgress"
    assert objects(server, f"{name}/ckpt/") == {"step-1.txt": b"1"}
    sm.stop_processing_job(ProcessingJobName=name)
    assert wait(server, name, timeout=30)["ProcessingJobStatus"] == "Stopped"


def test_stop_ends_a_running_job(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("proc-stop")
    script = """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(0)))
        print("running", flush=True)
        time.sleep(60)
    """
    submit(server, name, script)
    wait_log(server, name, "running")
    sm.stop_processing_job(ProcessingJobName=name)
    assert sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    job = wait(server, name, timeout=30)
    assert job["ProcessingJobStatus"] == "Stopped"
    assert "got SIGTERM" in log_lines(server, name)
    assert _error(sm.stop_processing_job, ProcessingJobName=name)["Code"] == "ValidationException"


def test_script_that_raises_fails_with_its_traceback_tail(server: ServerProcess) -> None:
    name = unique("proc-fail")
    submit(server, name, "raise ValueError('bad row 7')\n")
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "ValueError: bad row 7" in job["FailureReason"]
    summary = server.client("sagemaker").list_processing_jobs(NameContains=name)[
        "ProcessingJobSummaries"
    ]
    assert [s["ProcessingJobStatus"] for s in summary] == ["Failed"]
    assert "bad row 7" in summary[0]["FailureReason"]


def test_max_runtime_ends_the_job(server: ServerProcess) -> None:
    name = unique("proc-maxrt")
    submit(
        server, name, "import time; time.sleep(60)\n", StoppingCondition={"MaxRuntimeInSeconds": 1}
    )
    job = wait(server, name, timeout=30)
    assert job["ProcessingJobStatus"] == "Stopped"


def test_empty_input_prefix_fails_naming_the_uri(server: ServerProcess) -> None:
    name = unique("proc-empty")
    uri = f"s3://{BUCKET}/{name}/nothing-here/"
    submit(
        server,
        name,
        "print('never')\n",
        inputs=[s3_input("data", uri, "/opt/ml/processing/input/data")],
    )
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Failed"
    assert uri in job["FailureReason"]


def test_output_folder_left_empty_uploads_nothing(server: ServerProcess) -> None:
    name = unique("proc-noout")
    outputs = [s3_output("out", f"s3://{BUCKET}/{name}/out", "/opt/ml/processing/output")]
    submit(
        server, name, "import shutil; shutil.rmtree('/opt/ml/processing/output')\n", outputs=outputs
    )
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert objects(server, f"{name}/out") == {}


def test_sharded_input_splits_across_instances(server: ServerProcess) -> None:
    name = unique("proc-shard")
    data = put_objects(server, f"{name}/data", {f"part-{i}.csv": str(i).encode() for i in range(4)})
    script = """
        import json, os
        host = json.load(open("/opt/ml/config/resourceconfig.json"))["current_host"]
        names = sorted(os.listdir("/opt/ml/processing/input/data"))
        open(f"/opt/ml/processing/output/{host}.txt", "w").write(",".join(names))
    """
    submit(
        server,
        name,
        script,
        inputs=[
            s3_input(
                "data",
                data,
                "/opt/ml/processing/input/data",
                S3DataDistributionType="ShardedByS3Key",
            )
        ],
        outputs=[s3_output("out", f"s3://{BUCKET}/{name}/out", "/opt/ml/processing/output")],
        instance_count=2,
    )
    job = wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    out = objects(server, f"{name}/out/")
    assert set(out) == {"algo-1.txt", "algo-2.txt"}
    seen = sorted(out["algo-1.txt"].decode().split(",") + out["algo-2.txt"].decode().split(","))
    assert seen == [f"part-{i}.csv" for i in range(4)]
    assert out["algo-1.txt"] != out["algo-2.txt"]


# -- refused at create ---------------------------------------------------------------------


def _refused(server: ServerProcess, name: str, request: dict[str, Any]) -> str:
    sm = server.client("sagemaker")
    error = _error(sm.create_processing_job, **request)
    assert error["Code"] == "ValidationException", error
    missing = _error(sm.describe_processing_job, ProcessingJobName=name)
    assert missing["Code"] == "ValidationException"
    return error["Message"]


def test_overlapping_local_paths_are_refused(server: ServerProcess) -> None:
    """An output inside an input (the code input may nest: test_processing_nested)."""
    name = unique("proc-overlap")
    data = put_objects(server, f"{name}/data", {"a": b"a"})
    request = processing_request(
        server,
        name,
        "print(1)\n",
        inputs=[s3_input("data", data, "/opt/ml/processing/input")],
        outputs=[s3_output("out", data, "/opt/ml/processing/input/out")],
    )
    message = _refused(server, name, request)
    assert "is inside" in message
    assert "/opt/ml/processing/input" in message


def test_relative_local_path_is_refused(server: ServerProcess) -> None:
    name = unique("proc-rel")
    data = put_objects(server, f"{name}/data", {"a": b"a"})
    request = processing_request(
        server, name, "print(1)\n", inputs=[s3_input("data", data, "data/in")]
    )
    assert "absolute" in _refused(server, name, request)


def test_gzip_compression_without_pipe_mode_is_refused(server: ServerProcess) -> None:
    name = unique("proc-gzip")
    data = put_objects(server, f"{name}/data", {"a": b"a"})
    request = processing_request(
        server,
        name,
        "print(1)\n",
        inputs=[s3_input("data", data, "/opt/ml/processing/data", S3CompressionType="Gzip")],
    )
    assert "Gzip" in _refused(server, name, request)


def test_missing_entrypoint_is_refused(server: ServerProcess) -> None:
    name = unique("proc-noentry")
    request = processing_request(server, name, "print(1)\n")
    del request["AppSpecification"]["ContainerEntrypoint"]
    assert "ContainerEntrypoint" in _refused(server, name, request)


def test_gpu_instance_type_on_a_cpu_machine_is_refused(server: ServerProcess) -> None:
    name = unique("proc-gpu")
    request = processing_request(server, name, "print(1)\n", instance_type="ml.g5.2xlarge")
    error = _error(server.client("sagemaker").create_processing_job, **request)
    assert error["Code"] == "ResourceLimitExceeded"


# -- describe, list, names -----------------------------------------------------------------


def test_describe_unknown_job(server: ServerProcess) -> None:
    error = _error(
        server.client("sagemaker").describe_processing_job, ProcessingJobName="no-such-proc-job"
    )
    assert error == {"Code": "ValidationException", "Message": "Requested resource not found."}


def test_duplicate_name_is_resource_in_use(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("proc-dup")
    request = processing_request(server, name, "print(1)\n")
    sm.create_processing_job(**request)
    assert _error(sm.create_processing_job, **request)["Code"] == "ResourceInUse"
    wait(server, name)


def test_delete_only_finished_jobs_and_their_folders_go_with_them(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    done, running = unique("proc-del-done"), unique("proc-del-running")
    submit(server, done, "print('done')\n")
    submit(server, running, "import time\nprint('running', flush=True)\ntime.sleep(60)\n")
    assert wait(server, done)["ProcessingJobStatus"] == "Completed"
    wait_log(server, running, "running")

    error = _error(sm.delete_processing_job, ProcessingJobName=running)
    assert error["Code"] == "ValidationException"
    assert "InProgress" in error["Message"]

    folder = server.data_dir / "jobs" / "processing" / done
    assert folder.is_dir()
    sm.delete_processing_job(ProcessingJobName=done)
    assert not folder.exists()
    error = _error(sm.describe_processing_job, ProcessingJobName=done)
    assert error == {"Code": "ValidationException", "Message": "Requested resource not found."}
    assert sm.list_processing_jobs(NameContains=done)["ProcessingJobSummaries"] == []
    assert _error(sm.delete_processing_job, ProcessingJobName=done)["Code"] == "ValidationException"

    sm.stop_processing_job(ProcessingJobName=running)
    assert wait(server, running, timeout=30)["ProcessingJobStatus"] == "Stopped"
    sm.delete_processing_job(ProcessingJobName=running)
    assert not (server.data_dir / "jobs" / "processing" / running).exists()


def test_list_filters_and_sorts(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    tag = unique("proc-list")
    names = [f"{tag}-{i}" for i in range(3)]
    for job_name in names:
        submit(server, job_name, "print(1)\n")
    for job_name in names:
        wait(server, job_name)
    listed = sm.list_processing_jobs(NameContains=tag, SortBy="CreationTime", SortOrder="Ascending")
    summaries = listed["ProcessingJobSummaries"]
    assert [s["ProcessingJobName"] for s in summaries] == names
    assert {s["ProcessingJobStatus"] for s in summaries} == {"Completed"}
    assert all(s["ProcessingJobArn"].endswith(s["ProcessingJobName"]) for s in summaries)
    paged = sm.list_processing_jobs(NameContains=tag, MaxResults=2)
    assert len(paged["ProcessingJobSummaries"]) == 2
    rest = sm.list_processing_jobs(NameContains=tag, MaxResults=2, NextToken=paged["NextToken"])
    assert len(rest["ProcessingJobSummaries"]) == 1
    assert (
        sm.list_processing_jobs(NameContains=tag, StatusEquals="Failed")["ProcessingJobSummaries"]
        == []
    )


def test_logs_name_the_job_and_host(server: ServerProcess, tmp_path: Path) -> None:
    name = unique("proc-logs")
    submit(server, name, "print('hello from the job')\n")
    wait(server, name)
    logs = server.client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    assert [s["logStreamName"].split("/")[1].split("-")[:2] for s in streams] == [["algo", "1"]]
    assert "hello from the job" in log_lines(server, name)
