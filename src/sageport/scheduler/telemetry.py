"""GPU telemetry of running training and processing jobs, and the idle-GPU warning.

A runner of the scheduler loop: every ``interval_s`` it samples (NVML) the GPUs each running
job holds and appends the readings to a bounded series kept with the job
(``JobRuntime.gpu_telemetry``). A job that holds GPUs and has not touched them by the end of
its first ``idle_window_s`` (utilization 0 % and memory below ``idle_memory_mib`` in every
reading) gets one WARNING line in its log and ``JobRuntime.gpu_idle_warning``: that is the
silent CPU fallback (a CPU-only torch, a model never moved to ``cuda``) caught while the
user can still stop the job. Readings taken while sageport's own pre-flight probe runs on a
GPU (its tiny matmul makes a CUDA context) do not count as use.

A GPU that stops answering (NVML errors: it fell off the bus) is recorded as a note, and the
first time for each GPU also as a WARNING line in the job's log and in
``JobRuntime.gpu_warnings``, which the job's status message shows; nothing here raises into
the loop.

Stored shape of ``gpu_telemetry`` (JSON)::

    {"interval_s": 5.0,
     "points": [[epoch_s, gpu_index, util_percent|null, memory_used_mib|null], ...],
     "used": {"<host>": true},        # a host whose GPUs were seen busy at least once
     "notes": ["GPU 1 did not answer NVML at ..."],
     "lost": [1]}                     # GPUs already reported as gone (log and status)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sageport.clock import Clock
from sageport.domain.runtime import JobRuntime
from sageport.domain.times import to_datetime
from sageport.gpu.doctor import is_probe_process
from sageport.gpu.inventory import GpuSample
from sageport.runtime.config_files import all_hosts
from sageport.scheduler.records import JobRecords, LogSink
from sageport.store.resources import Resource

log = logging.getLogger(__name__)

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
MAX_NOTES = 20


class GpuSampler(Protocol):
    """What telemetry needs of a discovery (``NvmlDiscovery``, ``FakeDiscovery``)."""

    def sample(self, indices: Iterable[int]) -> list[GpuSample]: ...


@dataclass(frozen=True)
class TelemetryConfig:
    interval_s: float = 5.0
    idle_window_s: float = 180.0
    idle_memory_mib: int = 300
    """A CUDA context alone takes ~300-500 MiB: below this, the job never really used the GPU."""
    max_points: int = 4000
    """Readings kept per job; past this the series is thinned to every other point."""
    warn_idle: bool = True
    """Off for fake inventories: a fake GPU is always idle, so the warning would be noise."""


@dataclass(frozen=True)
class WatchedJobs:
    """One kind of job to watch: its service, log group, and host names from a spec."""

    jobs: JobRecords[Any]
    log_group: str
    host_names: Callable[[Mapping[str, Any]], list[str]]


class TelemetryRunner:
    def __init__(
        self,
        jobs: JobRecords[Any] | Sequence[WatchedJobs],
        sampler: GpuSampler,
        logs: LogSink,
        clock: Clock,
        config: TelemetryConfig | None = None,
        *,
        is_probe: Callable[[int], bool] = is_probe_process,
    ) -> None:
        """``jobs``: the kinds to watch; one kind's records alone are watched as training
        jobs."""
        self.kinds = (
            list(jobs) if isinstance(jobs, Sequence) else [WatchedJobs(jobs, LOG_GROUP, all_hosts)]
        )
        self.sampler = sampler
        self.logs = logs
        self.clock = clock
        self.config = config or TelemetryConfig()
        self.is_probe = is_probe
        self._last: float | None = None

    async def tick(self) -> None:
        now = self.clock.monotonic()
        if self._last is not None and now - self._last < self.config.interval_s:
            return
        self._last = now
        for kind in self.kinds:
            for job in kind.jobs.active():
                running = kind.jobs.machine.running
                if kind.jobs.status_of(job) is not running or not _held_gpus(job, kind):
                    continue
                try:
                    await self._observe(job, kind)
                except Exception:
                    log.exception("GPU telemetry for %s %s failed", job.kind, job.name)

    async def cancel(self) -> None:
        """Nothing runs between ticks; the stored series is complete as of the last one."""

    async def _observe(self, job: Resource, kind: WatchedJobs) -> None:
        held = _held_gpus(job, kind)
        wanted = sorted({i for gpus in held.values() for i in gpus})
        notes: list[str] = []
        failed = None
        try:
            samples = await asyncio.to_thread(self.sampler.sample, wanted)
        except Exception as exc:  # NVML gone entirely: keep the job, say so
            samples = []
            failed = f"GPU sampling failed: {type(exc).__name__}: {exc}"
            notes.append(failed)
        at = self.clock.now()
        stamp = round(at.timestamp(), 3)
        by_index = {s.index: s for s in samples}
        missing = [] if failed else [i for i in wanted if i not in by_index]
        for index in missing:
            notes.append(
                f"GPU {index} did not answer NVML at {at.isoformat(timespec='seconds')} "
                "(it may have fallen off the bus: check `nvidia-smi` and dmesg for Xid errors)"
            )
        rt = JobRuntime.from_json(job.state)
        telemetry = dict(rt.gpu_telemetry)
        telemetry["interval_s"] = self.config.interval_s
        points = [list(p) for p in telemetry.get("points") or []]
        points += [[stamp, s.index, s.utilization_percent, s.memory_used_mib] for s in samples]
        while len(points) > self.config.max_points:
            points = points[::2]
        telemetry["points"] = points
        used = dict(telemetry.get("used") or {})
        for host, gpus in held.items():
            if any(self._busy(by_index[i]) for i in gpus if i in by_index):
                used[host] = True
        telemetry["used"] = used
        old_notes = list(telemetry.get("notes") or [])
        telemetry["notes"] = (old_notes + [n for n in notes if n not in old_notes])[-MAX_NOTES:]
        lost = self._report_lost(job, kind, held, telemetry, missing, failed, at.isoformat())
        warning = self._idle_warning(job, kind, held, used, points)

        def sampled(r: JobRuntime) -> JobRuntime:
            return replace(
                r,
                gpu_telemetry=telemetry,
                gpu_warnings=r.gpu_warnings + lost,
                gpu_idle_warning=warning or r.gpu_idle_warning,
            )

        kind.jobs.update(job.name, sampled)

    def _report_lost(
        self,
        job: Resource,
        kind: WatchedJobs,
        held: Mapping[str, Sequence[int]],
        telemetry: dict[str, Any],
        missing: Sequence[int],
        failed: str | None,
        when: str,
    ) -> list[str]:
        """First time a GPU (or NVML itself) stops answering: a log line per host and a
        status note; ``telemetry["lost"]`` remembers what was already said."""
        reported = list(telemetry.get("lost") or [])
        new: list[str] = []
        streams = JobRuntime.from_json(job.state).log_streams
        stamp = int(self.clock.now().timestamp() * 1000)
        gone = [i for i in missing if i not in reported]
        if failed and "nvml" not in reported:
            reported.append("nvml")
            new.append(f"{failed} at {when}: the job's GPUs cannot be watched")
        for index in gone:
            reported.append(index)
            hosts = [h for h, gpus in held.items() if index in gpus]
            new.append(
                f"GPU {index} (held by {', '.join(hosts)}) stopped answering NVML at {when}: it "
                "may have fallen off the bus (check `nvidia-smi` and dmesg for Xid errors); the "
                "job may fail or run slower"
            )
        telemetry["lost"] = reported
        for note in new:
            for host in held:
                if streams.get(host):
                    self.logs.put_events(
                        kind.log_group, streams[host], [(stamp, f"WARNING: sageport: {note}")]
                    )
        return new

    def _busy(self, sample: GpuSample) -> bool:
        if any(self.is_probe(p.pid) for p in sample.processes):
            return False  # sageport's pre-flight matmul, not the job's own use
        return bool(sample.utilization_percent) or (
            sample.memory_used_mib is not None
            and sample.memory_used_mib >= self.config.idle_memory_mib
        )

    def _idle_warning(
        self,
        job: Resource,
        kind: WatchedJobs,
        held: Mapping[str, Sequence[int]],
        used: Mapping[str, bool],
        points: list[list[Any]],
    ) -> str | None:
        """The warning to record now, once per job, when the idle window has passed unused."""
        rt = JobRuntime.from_json(job.state)
        if not self.config.warn_idle or rt.gpu_idle_warning:
            return None
        if not rt.started_at:
            return None
        started = to_datetime(rt.started_at)
        elapsed = (self.clock.now() - started).total_seconds()
        if elapsed < self.config.idle_window_s:
            return None
        idle_hosts = [
            h for h, gpus in held.items() if not used.get(h) and any(p[1] in gpus for p in points)
        ]
        if not idle_hosts:
            return None
        window = f"{self.config.idle_window_s:g} s"
        streams = rt.log_streams
        message = ""
        for host in idle_hosts:
            gpus = ",".join(str(i) for i in held[host])
            message = (
                f"WARNING: sageport: {host} holds GPU(s) {gpus} but has not used them in its "
                f"first {window} (utilization 0 %, memory < {self.config.idle_memory_mib} MiB): "
                "the job is probably computing on the CPU. Check that torch.cuda.is_available() "
                "is True in the job (see the pre-flight lines at the top of this log) and that "
                "the model and data are moved to 'cuda'."
            )
            stream = streams.get(host)
            if stream:
                stamp = int(self.clock.now().timestamp() * 1000)
                self.logs.put_events(kind.log_group, stream, [(stamp, message)])
        return (
            f"GPU(s) idle for the first {window} on {', '.join(idle_hosts)}: probably computing on "
            "the CPU"
        )


def _held_gpus(job: Resource, kind: WatchedJobs | None = None) -> dict[str, list[int]]:
    """Host name → NVML indices it holds (grants are stored in host order)."""
    grants = JobRuntime.from_json(job.state).grants
    hosts = kind.host_names(job.spec) if kind is not None else all_hosts(job.spec)
    return {
        host: [int(i) for i in grant.get("gpus") or []]
        for host, grant in zip(hosts, grants, strict=False)
        if grant.get("gpus")
    }
