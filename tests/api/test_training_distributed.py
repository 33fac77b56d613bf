"""The SDK's ``distribution=`` really distributes: torchrun on every instance and GPU.

A 2-instance ``ml.m5.xlarge`` job with ``torch_distributed`` runs one torchrun per instance
(``--nnodes 2``, one process each on a CPU type), whose ranks find each other through
``algo-1`` (the sandbox's /etc/hosts) or 127.0.0.1 (no sandbox) and all-reduce over Gloo; a
4-GPU instance type (fake GPUs) gets four processes. The options sageport does not start fail
at once with a reason that says what to use; ``multi_worker_mirrored_strategy`` gets
``TF_CONFIG``. Servers: one with fake GPUs (sandbox when bubblewrap works), one without a
sandbox.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from server_helpers import apply_sageport_env
from training_helpers import (
    PYTORCH_IMAGE,
    TENSORFLOW_IMAGE,
    host_folder,
    log_lines,
    log_text,
    report,
    submit,
    unique,
    wait,
)

from sageport.backends.local import probe_sandbox
from sageport.cli.process import ServerProcess

SANDBOX, WHY = probe_sandbox()
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs PyTorch (gloo)"
)

#: every rank all-reduces its rank + 1 over Gloo; each logs what it is; rank 0 reports
DDP = """
    import json, os, socket
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    host = os.environ["SM_CURRENT_HOST"]
    # one write per line: the ranks of one host share its stdout
    os.write(1, f"rank={rank} world={world} local_rank={os.environ['LOCAL_RANK']} host={host} "
                f"sum={total.item():g}\\n".encode())
    gathered = [None] * world
    dist.all_gather_object(gathered, {"rank": rank, "host": host})
    if rank == 0:
        master = os.environ["MASTER_ADDR"]
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
            json.dump({
                "world": world,
                "sum": total.item(),
                "ranks": gathered,
                "master": master,
                "master_ip": socket.gethostbyname(master),
                "port": os.environ["MASTER_PORT"],
                "nccl_ifname": os.environ.get("NCCL_SOCKET_IFNAME"),
            }, f)
    dist.destroy_process_group()
"""

TORCH_DISTRIBUTED = {"sagemaker_torch_distributed_enabled": True}


def _server(data: Any, settings: str) -> Iterator[ServerProcess]:
    data.mkdir(parents=True, exist_ok=True)
    (data / "sageport.toml").write_text(settings)
    proc = ServerProcess(data)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Four fake GPUs; accounting loose enough that two ml.m5.xlarge or one ml.g5.12xlarge fit."""
    settings = 'fake_gpus = "4"\ncpu_overcommit = 100.0\nmemory_overcommit = 100.0\n'
    yield from _server(tmp_path_factory.mktemp("dist-gpu") / "data", settings)


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = 'sandbox = "off"\ncpu_overcommit = 100.0\nmemory_overcommit = 100.0\n'
    yield from _server(tmp_path_factory.mktemp("dist-bare") / "data", settings)


def _resources(instance_type: str, count: int) -> dict[str, Any]:
    return {"InstanceType": instance_type, "InstanceCount": count, "VolumeSizeInGB": 10}


def _ddp_job(server: ServerProcess, name: str, instance_type: str, count: int) -> dict[str, Any]:
    submit(
        server,
        name,
        DDP,
        hyperparameters={**TORCH_DISTRIBUTED, "sagemaker_instance_type": instance_type},
        ResourceConfig=_resources(instance_type, count),
    )
    job = wait(server, name, timeout=180)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason") or log_text(
        server, name
    )
    return job


def _rank_lines(server: ServerProcess, name: str) -> list[str]:
    return sorted(line for line in log_lines(server, name) if line.startswith("rank="))


@needs_torch
def test_two_instances_run_one_ddp_job_over_gloo(gpu_server: ServerProcess) -> None:
    name = unique("ddp2")
    job = _ddp_job(gpu_server, name, "ml.m5.xlarge", 2)
    assert _rank_lines(gpu_server, name) == [
        "rank=0 world=2 local_rank=0 host=algo-1 sum=3",
        "rank=1 world=2 local_rank=0 host=algo-2 sum=3",
    ]
    got = report(gpu_server, job)
    assert got["ranks"] == [{"rank": 0, "host": "algo-1"}, {"rank": 1, "host": "algo-2"}]
    assert got["nccl_ifname"] == "lo"
    if SANDBOX:  # algo-1 resolves through the sandbox's /etc/hosts
        assert got["master"] == "algo-1"
    else:
        assert got["master"] == "127.0.0.1"
    assert got["master_ip"] == "127.0.0.1"
    commands = [x for x in log_lines(gpu_server, name) if "torch_distributed: torchrun" in x]
    port = got["port"]
    assert sorted(commands) == [
        f"sageport: distribution torch_distributed: torchrun --nnodes 2 --nproc_per_node 1 "
        f"--master_addr {got['master']} --master_port {port} --node_rank {rank} train.py"
        for rank in (0, 1)
    ]


@needs_torch
def test_without_a_sandbox_the_ranks_meet_on_loopback(bare_server: ServerProcess) -> None:
    name = unique("ddp-bare")
    job = _ddp_job(bare_server, name, "ml.m5.xlarge", 2)
    assert _rank_lines(bare_server, name) == [
        "rank=0 world=2 local_rank=0 host=algo-1 sum=3",
        "rank=1 world=2 local_rank=0 host=algo-2 sum=3",
    ]
    got = report(bare_server, job)
    assert got["master"] == "127.0.0.1"
    assert any("algo-N) do not resolve" in x for x in log_lines(bare_server, name))


@needs_torch
def test_a_multi_gpu_instance_gets_one_process_per_gpu(gpu_server: ServerProcess) -> None:
    # ml.g5.12xlarge has 4 GPUs (fake here): torchrun starts 4 processes, as on SageMaker
    name = unique("ddp4")
    job = _ddp_job(gpu_server, name, "ml.g5.12xlarge", 1)
    assert _rank_lines(gpu_server, name) == [
        f"rank={r} world=4 local_rank={r} host=algo-1 sum=10" for r in range(4)
    ]
    assert report(gpu_server, job)["world"] == 4


@needs_torch
def test_one_failed_instance_ends_the_job_with_its_own_reason(gpu_server: ServerProcess) -> None:
    name = unique("ddp-fail")
    script = """
        import os, sys
        import torch.distributed as dist
        if os.environ["SM_CURRENT_HOST"] == "algo-2":
            sys.exit("algo-2 gives up")
        dist.init_process_group("gloo")  # waits for a rank that never comes
    """
    submit(
        gpu_server,
        name,
        script,
        hyperparameters=TORCH_DISTRIBUTED,
        ResourceConfig=_resources("ml.m5.xlarge", 2),
    )
    job = wait(gpu_server, name, timeout=120)
    assert job["TrainingJobStatus"] == "Failed"
    assert "algo-2 gives up" in job["FailureReason"]
    assert any("algo-2 failed" in x and "stopping algo-1" in x for x in log_lines(gpu_server, name))


def test_multi_worker_mirrored_strategy_gets_tf_config(gpu_server: ServerProcess) -> None:
    name = unique("mwms")
    script = """
        import json, os
        config = json.loads(os.environ["TF_CONFIG"])
        name = os.path.join(os.environ["SM_MODEL_DIR"], os.environ["SM_CURRENT_HOST"] + ".json")
        json.dump(config, open(name, "w"))
    """
    submit(
        gpu_server,
        name,
        script,
        image=TENSORFLOW_IMAGE,
        hyperparameters={"sagemaker_multi_worker_mirrored_strategy_enabled": True},
        ResourceConfig=_resources("ml.m5.xlarge", 2),
    )
    job = wait(gpu_server, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    configs = [
        json.loads((host_folder(gpu_server, name, h) / "model" / f"{h}.json").read_text())
        for h in ("algo-1", "algo-2")
    ]
    workers = configs[0]["cluster"]["worker"]
    assert [c["task"] for c in configs] == [
        {"index": 0, "type": "worker"},
        {"index": 1, "type": "worker"},
    ]
    assert all(c["cluster"] == {"worker": workers} for c in configs)
    assert all(c["environment"] == "cloud" for c in configs)
    hosts = [w.rsplit(":", 1)[0] for w in workers]
    ports = [int(w.rsplit(":", 1)[1]) for w in workers]
    assert hosts == (["algo-1", "algo-2"] if SANDBOX else ["127.0.0.1", "127.0.0.1"])
    assert len(set(ports)) == 2  # one machine, one loopback: each worker a port of its own


@pytest.mark.tensorflow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow")
def test_multi_worker_mirrored_strategy_all_reduces_across_instances(
    gpu_server: ServerProcess,
) -> None:
    name = unique("mwms-tf")
    script = """
        import json, os
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

        @tf.function
        def step():
            context = tf.distribute.get_replica_context()
            return context.all_reduce("sum", tf.constant(float(index + 1)))

        total = strategy.experimental_local_results(strategy.run(step))[0]
        print(f"replicas={strategy.num_replicas_in_sync} sum={float(total):g}", flush=True)
    """
    submit(
        gpu_server,
        name,
        script,
        image=TENSORFLOW_IMAGE,
        hyperparameters={"sagemaker_multi_worker_mirrored_strategy_enabled": True},
        ResourceConfig=_resources("ml.m5.xlarge", 2),
    )
    job = wait(gpu_server, name, timeout=240)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason") or log_text(
        gpu_server, name
    )
    lines = [x for x in log_lines(gpu_server, name) if x.startswith("replicas=")]
    assert lines == ["replicas=2 sum=3", "replicas=2 sum=3"]


@pytest.mark.parametrize(
    ("hyperparameters", "count", "words"),
    [
        ({"sagemaker_mpi_enabled": True}, 2, "asks for 2 processes (2 instance(s) x 1"),
        (
            {"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 8},
            1,
            "asks for 8 processes",
        ),
        ({"sagemaker_distributed_dataparallel_enabled": True}, 1, "smdistributed.dataparallel"),
        ({"mp_parameters": {"partitions": 2}}, 1, "smdistributed.modelparallel"),
        ({"sagemaker_pytorch_ddp_enabled": True}, 2, "'pytorchddp'"),
        ({"sagemaker_parameter_server_enabled": True}, 2, "parameter servers"),
        ({"sagemaker_pytorch_xla_multi_worker_enabled": True}, 1, "Trainium"),
    ],
    ids=["mpi-2-hosts", "mpi-8-procs", "smddp", "smp", "pytorchddp", "ps-2-hosts", "xla"],
)
def test_options_sageport_does_not_start_fail_at_once_saying_why(
    bare_server: ServerProcess, hyperparameters: dict[str, Any], count: int, words: str
) -> None:
    name = unique("dist-no")
    submit(
        bare_server,
        name,
        "print('must not run')\n",
        hyperparameters=hyperparameters,
        ResourceConfig=_resources("ml.m5.xlarge", count),
    )
    job = wait(bare_server, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert words in job["FailureReason"]
    if "modelparallel" not in words and "Trainium" not in words:
        assert "torch_distributed" in job["FailureReason"] or "multi_worker" in job["FailureReason"]
    assert "must not run" not in log_lines(bare_server, name)
    # refused before staging: the code was never unpacked
    assert not (host_folder(bare_server, name) / "code" / "train.py").exists()


def test_mpi_with_one_process_in_all_runs_the_script_once(bare_server: ServerProcess) -> None:
    name = unique("mpi1")
    submit(
        bare_server,
        name,
        "print('one process')\n",
        hyperparameters={"sagemaker_mpi_enabled": True},
    )
    job = wait(bare_server, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    lines = log_lines(bare_server, name)
    assert "one process" in lines
    assert any("distribution mpi with one process in all" in x for x in lines)


@needs_torch
def test_the_sdk_pytorch_estimator_with_torch_distributed(
    gpu_server: ServerProcess, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sagemaker")
    apply_sageport_env(gpu_server, monkeypatch)
    import sagemaker
    from sagemaker.pytorch import PyTorch

    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(__import__("textwrap").dedent(DDP))
    estimator = PyTorch(
        entry_point="train.py",
        source_dir=str(source),
        image_uri=PYTORCH_IMAGE,  # a CPU image: the SDK allows torch_distributed on ml.m5 then
        instance_type="ml.m5.xlarge",
        instance_count=2,
        distribution={"torch_distributed": {"enabled": True}},
        sagemaker_session=sagemaker.Session(),
        base_job_name="sdk-ddp",
    )
    estimator.fit(wait=True, logs=False)
    name = estimator.latest_training_job.name
    assert _rank_lines(gpu_server, name) == [
        "rank=0 world=2 local_rank=0 host=algo-1 sum=3",
        "rank=1 world=2 local_rank=0 host=algo-2 sum=3",
    ]
    assert os.environ["AWS_ENDPOINT_URL"] == gpu_server.url
