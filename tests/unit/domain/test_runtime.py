"""JobRuntime loads the rows the untyped ``extra`` dict wrote, and writes the same keys."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sageport.domain.runtime import (
    EndpointInstance,
    EndpointRuntime,
    JobRuntime,
    ReplicaSlot,
    StopReason,
)

# A training job's ``extra`` as the code before JobRuntime stored it (stopped at the runtime
# limit while uploading), with a key that code never wrote and one left null.
TODAY: dict[str, Any] = {
    "grants": [{"gpus": [0], "vcpus": 4.0, "memory_mib": 1024}],
    "sandbox": True,
    "admitted_at": "2026-01-01T00:00:00+00:00",
    "hosts": {"algo-1": {"run_dir": "/d/algo-1.run", "launcher_pid": 7, "started_at": 1.5}},
    "log_streams": {"algo-1": "job/algo-1-1767225600"},
    "log_offsets": {"algo-1": 812},
    "started_at": "2026-01-01T00:00:02+00:00",
    "error_tails": {"algo-1": ["Traceback", "ValueError: x"]},
    "tails_frozen": ["algo-1"],
    "log_truncated": {"algo-1": "[sageport] log truncated"},
    "metric_states": {"loss": [1.0, 0.5, 2.0]},
    "terminated_at": "2026-01-01T01:00:00+00:00",
    "stop_reason": "max_runtime",
    "exits": {"algo-1": {"returncode": -15, "signal": 15, "ended_at": 3.0, "reason": None}},
    "gpu_warnings": ["GPU 0 fell back to CPU"],
    "gpu_idle_warning": "GPU(s) idle for the first 60 s on algo-1",
    "gpu_telemetry": {"interval_s": 5.0, "points": [[1.0, 0, 0, 10]], "used": {}},
    "uploaded": {"out/a.txt": [3.0, 1.0]},
    "ended_at": "2026-01-01T01:00:05+00:00",
    "model_artifacts": "s3://b/job/output/model.tar.gz",
    "final_metrics": [{"MetricName": "loss", "Value": 0.5}],
    "queue_message": None,
    "from_a_newer_server": {"kept": True},
}


def test_a_row_in_todays_format_loads_typed() -> None:
    rt = JobRuntime.from_json(TODAY)
    assert rt.version == 0  # written before versions existed
    assert rt.grants[0]["gpus"] == [0]
    assert rt.sandbox is True
    assert rt.hosts["algo-1"]["launcher_pid"] == 7
    assert rt.log_offsets == {"algo-1": 812}
    assert rt.stop_reason is StopReason.MAX_RUNTIME
    assert rt.exits["algo-1"]["signal"] == 15
    assert rt.since == "2026-01-01T00:00:00+00:00"  # admission, not the launch
    assert rt.queue_message is None
    assert rt.failure_reason is None  # missing: the default
    assert rt.unknown == {"from_a_newer_server": {"kept": True}}


def test_it_writes_back_the_keys_it_read() -> None:
    written = JobRuntime.from_json(TODAY).to_json()
    expected = {k: v for k, v in TODAY.items() if v is not None}
    assert written == {**expected, "version": 0}


def test_an_empty_row_is_the_defaults_and_writes_nothing_but_its_version() -> None:
    rt = JobRuntime.from_json({})
    assert rt == JobRuntime.from_json(None) == JobRuntime()
    assert rt.sandbox is None
    assert rt.grants == []
    assert rt.since is None
    assert rt.to_json() == {"version": 0}


def test_substates_are_fields() -> None:
    rt = replace(JobRuntime(), stop_reason=StopReason.MAX_RUNTIME, terminated_at="t")
    assert rt.to_json() == {"version": 0, "stop_reason": "max_runtime", "terminated_at": "t"}
    assert JobRuntime.from_json(rt.to_json()) == rt


# An endpoint's ``extra`` as the code before EndpointRuntime stored it (after a failed
# rollback: the merge wrote explicit nulls).
ENDPOINT_TODAY: dict[str, Any] = {
    "config": "cfg-2",
    "generation": 3,
    "counts": {"AllTraffic": 2},
    "weights": {"AllTraffic": 1.0},
    "pending": None,
    "replicas": [{"id": "g3-AllTraffic-0", "variant": "AllTraffic", "port": 9001, "ready": True}],
    "pending_replicas": [],
    "retired": [],
    "variant_notes": {},
    "queue_message": None,
    "rollout": None,
    "failure_reason": "Update failed and was rolled back: boom",
}


def test_an_endpoint_row_in_todays_format_loads_typed() -> None:
    rt = EndpointRuntime.from_json(ENDPOINT_TODAY)
    assert rt.config == "cfg-2"
    assert rt.generation == 3
    (serving,) = rt.slot(ReplicaSlot.SERVING)
    assert (serving.id, serving.variant, serving.port, serving.ready) == (
        "g3-AllTraffic-0",
        "AllTraffic",
        9001,
        True,
    )
    assert rt.slot(ReplicaSlot.PENDING) == []
    assert rt.pending is None
    assert rt.failure_reason is not None
    assert rt.unknown == {}
    written = rt.to_json()
    # the short instance row is written back whole (its defaults filled in), the rest as it was
    assert written.pop("replicas") == [
        EndpointInstance.from_json(ENDPOINT_TODAY["replicas"][0]).to_json()
    ]
    assert written == {
        "version": 0,
        **{k: v for k, v in ENDPOINT_TODAY.items() if v not in (None, [], {}) and k != "replicas"},
    }


# One instance as the untyped code stored it (scheduler.endpoint_instances built the dict;
# the runner added owner, runs and last_restart after a restart in place).
INSTANCE_TODAY: dict[str, Any] = {
    "id": "g2-AllTraffic-1",
    "variant": "AllTraffic",
    "index": 0,
    "instance_type": "ml.g5.xlarge",
    "port": 41234,
    "owner": "endpoint/ep/g2-AllTraffic-1",
    "grant": {"gpus": [0], "gpu_uuids": ["GPU-0"], "cpus": 4.0, "memory_gb": 16.0},
    "handle": {"run_dir": "/data/jobs/endpoints/ep/g2-AllTraffic-1.run1", "launcher_pid": 7},
    "ready": True,
    "restarts": 1,
    "last_restart": {"time": "2026-01-01T00:00:00+00:00", "reason": "exit code 1"},
    "runs": 1,
    "image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-gpu-py310",
    "startup_timeout_s": 240.0,
}


def test_an_instance_stored_as_a_dict_loads_typed_and_writes_back_the_same() -> None:
    rt = EndpointRuntime.from_json({"replicas": [INSTANCE_TODAY], "retired": [INSTANCE_TODAY]})
    (instance,) = rt.replicas
    assert isinstance(instance, EndpointInstance)
    assert instance.owner == "endpoint/ep/g2-AllTraffic-1"
    assert instance.grant["gpus"] == [0]
    assert instance.last_restart == INSTANCE_TODAY["last_restart"]
    assert (instance.restarts, instance.runs, instance.ready) == (1, 1, True)
    assert rt.to_json()["replicas"] == [INSTANCE_TODAY]
    assert rt.to_json()["retired"] == [INSTANCE_TODAY]


def test_an_instance_before_its_first_restart_writes_no_restart_keys() -> None:
    fresh = {k: v for k, v in INSTANCE_TODAY.items() if k not in ("runs", "last_restart")}
    instance = EndpointInstance.from_json(fresh)
    assert (instance.runs, instance.last_restart) == (0, None)
    assert instance.to_json() == fresh


def test_an_instance_without_an_index_takes_it_from_its_id() -> None:
    old = {"id": "g1-Blue-3", "variant": "Blue", "port": "9000", "future_key": 1}
    instance = EndpointInstance.from_json(old)
    assert (instance.index, instance.port) == (2, 9000)
    assert instance.to_json()["future_key"] == 1  # a key this version does not know is kept


def test_a_new_endpoint_writes_what_create_wrote() -> None:
    assert EndpointRuntime(config="cfg").to_json() == {
        "version": 0,
        "config": "cfg",
        "generation": 0,
    }
    assert EndpointRuntime.from_json({"config": "cfg", "generation": 0}).generation == 0


def test_with_slot_replaces_one_set() -> None:
    one = [EndpointInstance("g0-A-1", "A")]
    rt = EndpointRuntime().with_slot(ReplicaSlot.PENDING, one)
    assert rt.pending_replicas == one
    assert rt.replicas == []
