"""The allocator and the job queue: matching, fallback, accounting, FIFO, restarts.

Requests come from the real catalog (``host_request``), inventories from fake specs, so each
test reads like the machine it describes: "a 2-core, 24 GiB laptop", "four T4s and an A100".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sageport.catalog import load_catalog
from sageport.catalog.hosts import host_request
from sageport.domain.hosts import HostRequest
from sageport.gpu import GpuDevice, parse_fake_spec
from sageport.scheduler.allocator import (
    LOST_GPU_NAME,
    Allocator,
    GpuMatching,
    HostGrant,
    fallback_warning,
    grant_notes,
)
from sageport.scheduler.queue import JobQueue, QueuedJob

CATALOG = load_catalog()


def hosts(instance_type: str, count: int = 1) -> list[HostRequest]:
    return [host_request(CATALOG, instance_type)] * count


def gpus(spec: str) -> tuple[GpuDevice, ...]:
    return parse_fake_spec(spec).devices


def laptop(spec: str = "0", **kw: object) -> Allocator:
    """2 cores, 24 GiB, the default overcommit (4 x CPU, 2 x memory)."""
    return Allocator(gpus(spec), 2.0, 24.0, **kw)  # type: ignore[arg-type]


def indices(grants: list[HostGrant] | None) -> list[list[int]]:
    assert grants is not None
    return [[g.index for g in grant.gpus] for grant in grants]


# -- GPU matching ------------------------------------------------------------------------


def test_any_matching_takes_any_gpu_with_enough_memory_the_smallest_first() -> None:
    mixed = Allocator(gpus("1xA100-80GB,2xT4"), 64.0, 256.0)
    # ml.g4dn.xlarge promises a 16 GB T4: both T4s go before the A100
    assert indices(mixed.try_allocate("a", hosts("ml.g4dn.xlarge"))) == [[1]]
    assert indices(mixed.try_allocate("b", hosts("ml.g4dn.xlarge"))) == [[2]]
    assert indices(mixed.try_allocate("c", hosts("ml.g4dn.xlarge"))) == [[0]]
    # ml.g5.xlarge promises 24 GB: a T4 never fits, the A100 does under "any"
    fresh = Allocator(gpus("1xA100-80GB,2xT4"), 64.0, 256.0)
    assert indices(fresh.try_allocate("g5", hosts("ml.g5.xlarge"))) == [[0]]


def test_strict_matching_takes_only_the_catalogs_model() -> None:
    strict = Allocator(gpus("1xA100-80GB,2xT4"), 64.0, 256.0, matching=GpuMatching.STRICT)
    assert indices(strict.try_allocate("t4", hosts("ml.g4dn.xlarge"))) == [[1]]
    reason = strict.impossible(hosts("ml.g5.xlarge"))
    assert reason == (
        "ml.g5.xlarge needs 1 GPU per instance; this node has 0 that match "
        "(A10G with ≥ 24 GB; matching=strict)"
    )
    assert (
        Allocator(gpus("1xA100-80GB,2xT4"), 64.0, 256.0).impossible(hosts("ml.g5.xlarge")) is None
    )


def test_impossible_requests_name_their_reason_in_good_grammar() -> None:
    one = Allocator(gpus("1"), 8.0, 64.0)
    assert one.impossible(hosts("ml.p4d.24xlarge")) == (
        "ml.p4d.24xlarge needs 8 GPUs per instance; the largest node here has 1"
    )
    none = laptop()
    assert none.impossible(hosts("ml.g4dn.xlarge")).startswith(  # type: ignore[union-attr]
        "ml.g4dn.xlarge needs 1 GPU per instance; this machine has no usable GPU (see "
        "`sageport doctor`; set cpu_fallback"
    )
    assert none.impossible(hosts("ml.m5.xlarge")) is None


# -- CPU fallback ------------------------------------------------------------------------


def test_fallback_runs_gpu_types_on_a_machine_without_gpus() -> None:
    alloc = laptop(cpu_fallback=True)
    assert alloc.impossible(hosts("ml.g4dn.xlarge")) is None
    grants = alloc.try_allocate("j", hosts("ml.g4dn.xlarge"))
    assert grants is not None
    (grant,) = grants
    assert grant.gpus == ()
    assert grant.cpu_fallback
    assert "no usable GPU" in grant.fallback_reason
    assert fallback_warning(grant).startswith("WARNING: ml.g4dn.xlarge needs 1 GPU")


def test_fallback_with_some_gpus_but_too_few_runs_on_the_cpu_instead_of_waiting_forever() -> None:
    alloc = Allocator(gpus("1"), 64.0, 1024.0, cpu_fallback=True)
    assert alloc.impossible(hosts("ml.p4d.24xlarge")) is None  # admitted at create ...
    grants = alloc.try_allocate("big", hosts("ml.p4d.24xlarge"))
    assert grants is not None  # ... and it starts: on the CPU, with the reason
    assert grants[0].gpus == ()
    assert grants[0].cpu_fallback
    assert grants[0].fallback_reason == (
        "ml.p4d.24xlarge needs 8 GPUs per instance; the largest node here has 1"
    )
    # the one GPU stays free for a job that can really use it
    small = alloc.try_allocate("small", hosts("ml.g4dn.xlarge"))
    assert indices(small) == [[0]]
    assert small is not None
    assert not small[0].cpu_fallback


def test_fallback_never_takes_a_gpu_that_is_only_busy() -> None:
    alloc = Allocator(gpus("1"), 8.0, 64.0, cpu_fallback=True)
    assert alloc.try_allocate("a", hosts("ml.g4dn.xlarge")) is not None
    assert alloc.try_allocate("b", hosts("ml.g4dn.xlarge")) is None  # waits for the GPU
    assert alloc.waiting_for(hosts("ml.g4dn.xlarge")) == "Waiting for 1 free GPU (0 free now)"


def test_neuron_types_are_refused_or_run_on_the_cpu_by_opt_in() -> None:
    refused = Allocator(gpus("4"), 8.0, 64.0).impossible(hosts("ml.inf2.xlarge"))
    assert refused is not None
    assert refused.startswith(
        "ml.inf2.xlarge has 1 Inferentia2 accelerator (AWS Neuron), which sageport cannot provide"
    )
    assert "cpu_fallback = true" in refused
    grants = Allocator(gpus("4"), 8.0, 64.0, cpu_fallback=True).try_allocate(
        "n", hosts("ml.inf2.xlarge")
    )
    assert grants is not None
    assert grants[0].cpu_fallback
    assert grants[0].gpus == ()
    assert "Inferentia2" in grant_notes(grants[0])[0]


# -- vCPU and memory accounting ----------------------------------------------------------


def test_a_two_core_laptop_runs_an_m5_xlarge_and_a_flood_of_cpu_jobs_queues() -> None:
    alloc = laptop()  # accounts 8 vCPUs and 48 GiB
    assert alloc.try_allocate("m5-1", hosts("ml.m5.xlarge")) is not None
    assert alloc.try_allocate("m5-2", hosts("ml.m5.xlarge")) is not None
    flood = [alloc.try_allocate(f"m5-{i}", hosts("ml.m5.xlarge")) for i in range(3, 10)]
    assert flood == [None] * 7
    assert alloc.waiting_for(hosts("ml.m5.xlarge")) == (
        "Waiting for 4 vCPUs (free 0 of 8 accounted: 2 cores x cpu_overcommit 4) held by "
        "running jobs"
    )
    alloc.release("m5-1")
    assert alloc.try_allocate("m5-3", hosts("ml.m5.xlarge")) is not None


def test_memory_is_accounted_too_and_the_message_says_so() -> None:
    alloc = Allocator((), 64.0, 24.0, memory_overcommit=1.0)
    assert alloc.try_allocate("a", hosts("ml.m5.xlarge")) is not None  # 16 of 24 GiB
    assert alloc.try_allocate("b", hosts("ml.m5.xlarge")) is None
    assert alloc.waiting_for(hosts("ml.m5.xlarge")) == (
        "Waiting for 16.0 GiB of memory (free 8.0 of 24.0 GiB accounted: 24.0 GiB x "
        "memory_overcommit 1) held by running jobs"
    )


def test_a_job_bigger_than_the_machine_claims_all_of_it_and_runs_alone() -> None:
    alloc = laptop("4")  # p3.8xlarge: 32 vCPUs and 244 GiB against 8 and 48 accounted
    grants = alloc.try_allocate("p3", hosts("ml.p3.8xlarge"))
    assert indices(grants) == [[0, 1, 2, 3]]
    assert grants is not None
    assert (grants[0].vcpus, grants[0].claim_vcpus) == (32.0, 8.0)  # SM_NUM_CPUS stays 32
    assert alloc.used() == (8.0, 48.0)
    assert alloc.try_allocate("m5", hosts("ml.m5.xlarge")) is None
    alloc.release("p3")
    assert alloc.try_allocate("m5", hosts("ml.m5.xlarge")) is not None
    # and a p3.8xlarge with fake GPUs starts on a laptop that runs a small job: it waits
    assert alloc.try_allocate("p3", hosts("ml.p3.8xlarge")) is None


def test_gpu_hosts_claim_at_most_their_share_of_the_node() -> None:
    alloc = laptop("4")  # a 1-GPU host claims at most 1/4 of 8 vCPUs and 48 GiB
    for i in range(4):
        assert alloc.try_allocate(f"g{i}", hosts("ml.g4dn.xlarge")) is not None
    assert alloc.used() == (8.0, 48.0)
    assert alloc.waiting_for(hosts("ml.g4dn.xlarge")) == "Waiting for 1 free GPU (0 free now)"


def test_overcommit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        Allocator((), 2.0, 24.0, cpu_overcommit=0)


# -- multi-host jobs and release ---------------------------------------------------------


def test_a_multi_host_job_gets_all_its_hosts_at_once_or_nothing() -> None:
    alloc = Allocator(gpus("4"), 64.0, 512.0)
    assert indices(alloc.try_allocate("two", hosts("ml.g4dn.xlarge", 2))) == [[0], [1]]
    assert indices(alloc.try_allocate("one", hosts("ml.g4dn.xlarge"))) == [[2]]
    assert alloc.try_allocate("pair", hosts("ml.g4dn.xlarge", 2)) is None  # 1 free, not 2
    assert alloc.holders() == {"two": {0, 1}, "one": {2}}  # nothing held by the refused job
    assert alloc.waiting_for(hosts("ml.g4dn.xlarge", 2)) == ("Waiting for 2 free GPUs (1 free now)")
    alloc.release("two")
    assert indices(alloc.try_allocate("pair", hosts("ml.g4dn.xlarge", 2))) == [[0], [1]]
    alloc.release("unknown")  # releasing what is not held is harmless


def test_a_multi_host_job_larger_than_the_node_is_impossible() -> None:
    alloc = Allocator(gpus("8"), 64.0, 2048.0)
    assert alloc.impossible(hosts("ml.p3.8xlarge", 2)) is None
    assert alloc.impossible(hosts("ml.p3.8xlarge", 3)) == (
        "the job needs 12 GPUs over 3 instances at once; this node has 8"
    )


# -- CPU affinity ------------------------------------------------------------------------


def test_affinity_pins_each_host_to_its_share_of_the_least_loaded_cpus() -> None:
    alloc = Allocator((), 8.0, 64.0, cpu_affinity=True, cpu_ids=range(8))  # 32 vCPUs accounted
    pins = {}
    # vCPUs / cpu_overcommit 4 = CPUs: ml.m5.xlarge 1, ml.m5.4xlarge 4
    for owner, itype in (("a", "ml.m5.xlarge"), ("b", "ml.m5.4xlarge"), ("c", "ml.m5.xlarge")):
        grants = alloc.try_allocate(owner, hosts(itype))
        assert grants is not None
        pins[owner] = grants[0].cpus
    assert pins == {"a": (0,), "b": (1, 2, 3, 4), "c": (5,)}
    alloc.release("a")
    grants = alloc.try_allocate("d", hosts("ml.m5.2xlarge"))  # 2 CPUs, the least loaded
    assert grants is not None
    assert grants[0].cpus == (0, 6)
    assert alloc.pinned("b") == [1, 2, 3, 4]
    assert "pinned to CPU(s) 0,6 (cpu_affinity)" in grant_notes(grants[0])[0]
    # a host never gets more CPUs than there are
    whole = Allocator((), 2.0, 64.0, cpu_affinity=True, cpu_ids=[3, 5])
    big = whole.try_allocate("big", hosts("ml.c5.18xlarge"))
    assert big is not None
    assert big[0].cpus == (3, 5)


def test_without_affinity_nothing_is_pinned() -> None:
    grants = laptop().try_allocate("a", hosts("ml.m5.xlarge"))
    assert grants is not None
    assert grants[0].cpus == ()


# -- restarts ----------------------------------------------------------------------------


def test_grants_survive_a_json_round_trip_and_a_restart() -> None:
    before = Allocator(gpus("4"), 8.0, 64.0, cpu_affinity=True, cpu_ids=[0, 1, 2, 3, 4, 5, 6, 7])
    grants = before.try_allocate("job", hosts("ml.g4dn.xlarge", 2))
    assert grants is not None
    stored = [g.to_json() for g in grants]
    after = Allocator(gpus("4"), 8.0, 64.0, cpu_affinity=True, cpu_ids=[0, 1, 2, 3, 4, 5, 6, 7])
    assert after.grants_from_json(stored) == grants
    assert after.restore("job", stored) == []
    assert after.holders() == before.holders()
    assert after.used() == before.used()
    assert after.pinned("job") == before.pinned("job")
    assert after.try_allocate("other", hosts("ml.g4dn.xlarge", 3)) is None  # 2 GPUs held


def test_a_gpu_gone_after_a_restart_stays_on_the_jobs_books_and_is_reported() -> None:
    before = Allocator(gpus("4"), 8.0, 64.0)
    stored = [g.to_json() for g in before.try_allocate("job", hosts("ml.p3.8xlarge")) or []]
    # GPU 1 fell off the bus: NVML now numbers the other three 0, 1, 2
    survivors = gpus("4")[:1] + gpus("4")[2:]
    renumbered = tuple(
        GpuDevice(i, d.uuid, d.name, d.memory_mib, d.compute_capability)
        for i, d in enumerate(survivors)
    )
    after = Allocator(renumbered, 8.0, 64.0)
    notes = after.restore("job", stored)
    assert len(notes) == 1
    assert notes[0].startswith("GPU 1 (GPU-fa4e0000-0000-4000-8000-000000000001) was granted")
    (grant,) = after.grants_from_json(stored)
    assert len(grant.gpus) == 4  # the promised count, not silently three
    assert [g.index for g in grant.gpus] == [0, -1, 1, 2]  # found by UUID, the lost one -1
    assert grant.gpus[1].name == LOST_GPU_NAME
    assert after.lost_gpus("job") == ["GPU 1 (GPU-fa4e0000-0000-4000-8000-000000000001)"]
    assert after.holders() == {"job": {0, 1, 2}}
    assert "not on this machine any more" in grant_notes(grant)[0]


# -- the FIFO queue ----------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int, label: str, name: str) -> QueuedJob:
    return QueuedJob(T0 + timedelta(seconds=seconds), label, name)


def test_the_queue_is_one_fifo_over_every_kind_with_head_of_line_blocking() -> None:
    queue = JobQueue()
    processing = [at(1, "processing job", "p1"), at(3, "processing job", "p3")]
    queue.register("processing job", lambda: processing)
    training = [at(2, "training job", "t2"), at(4, "training job", "t4")]
    queue.register("training job", lambda: training)
    # the training runner refreshes with its own list; the processing one is asked
    queue.refresh("training job", training)
    assert [q.name for q in queue.waiting()] == ["p1", "t2", "p3", "t4"]
    assert queue.ahead_of("training job", "t2") == processing[0]  # p1 was created first
    assert queue.ahead_of("processing job", "p1") is None
    queue.leave("processing job", "p1")
    processing.pop(0)
    assert queue.ahead_of("training job", "t2") is None
    assert queue.ahead_of("processing job", "p3") == training[0]  # behind t2, which waits
    assert queue.ahead_of("training job", "t4") == training[0]
    head = queue.head()
    assert head is not None
    assert head.describe() == "training job t2"


def test_an_empty_queue_blocks_nobody() -> None:
    queue = JobQueue()
    queue.refresh()
    assert queue.head() is None
    assert queue.ahead_of("training job", "x") is None
