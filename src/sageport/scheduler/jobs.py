"""Carrying jobs through their steps: queue → stage → run → upload → end.

:class:`JobRunner` is driven by the scheduler loop: ``tick()`` looks at every job that
is not finished, in creation order, and does the next step of each. Slow steps (staging
data, packing and uploading artifacts) run as tasks; the loop only starts them once per
job. Everything a step learns is stored with the job, so after a server restart the same
``tick()`` picks each job up where it was (re-adopting running processes).

What differs between training and processing jobs — hosts, staging, the command, what is
stored at the end — is a :class:`JobKind` (``scheduler.training``, ``scheduler.processing``);
the life cycle here is the same for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sageport.backends.base import (
    DEFAULT_MAX_LOG_BYTES,
    TRUNCATION_NOTE,
    Backend,
    ExitInfo,
    HostHandle,
    LaunchSpec,
)
from sageport.catalog import Catalog
from sageport.clock import Clock
from sageport.domain import training as T
from sageport.domain.times import to_datetime
from sageport.errors import ValidationException
from sageport.runtime.distribution import launcher_failure_line
from sageport.runtime.errors import ContractError
from sageport.scheduler import artifacts, metrics
from sageport.scheduler.allocator import Allocator, HostGrant, HostRequest, fallback_status
from sageport.scheduler.hosts import JobContext
from sageport.scheduler.ports import PortBook
from sageport.scheduler.queue import JobQueue, QueuedJob
from sageport.services.jobs import JobService, secondary_of
from sageport.services.logs import LogService
from sageport.storage.objectstore import ObjectStore
from sageport.storage.transfer import TransferError
from sageport.store.errors import StatusConflict
from sageport.store.resources import Resource

log = logging.getLogger(__name__)

ERROR_TAIL_LINES = 10
PROGRESS_INTERVAL_S = 1.0
DRAIN_READS_PER_TICK = 4
"""Once a host has exited, up to this many log reads per tick until its log is drained (a
running host gets one read per tick): the whole log is shipped before the job ends, without
one flood stalling the server for the time a huge backlog takes."""
S = T.Secondary


@dataclass(frozen=True)
class RunnerConfig:
    jobs_dir: Path
    region: str
    endpoint_url: str
    access_key: str
    secret_key: str
    images: Mapping[str, str]
    sandbox: bool
    sandbox_note: str
    stop_grace_s: float
    server_env: Mapping[str, str]
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES


class JobKind(Protocol):
    """What one kind of job does at each step; the runner does the rest."""

    label: str
    folder: str
    log_group: str

    def hosts(self, catalog: Catalog, spec: Mapping[str, Any]) -> list[HostRequest]: ...
    def host_names(self, spec: Mapping[str, Any]) -> list[str]: ...
    async def stage(self, ctx: JobContext, host: str, store: ObjectStore) -> tuple[int, int]: ...
    def launch(
        self, ctx: JobContext, host: str, grant: HostGrant
    ) -> tuple[LaunchSpec, list[str]]: ...
    async def progress(
        self, ctx: JobContext, store: ObjectStore, seen: dict[str, list[float]]
    ) -> None:
        """Work while the job runs (Continuous outputs); ``seen`` persists with the job."""
        ...

    async def store_outputs(
        self, ctx: JobContext, store: ObjectStore, hosts: Sequence[str]
    ) -> dict[str, Any]: ...
    def metric_definitions(self, spec: Mapping[str, Any]) -> list[dict[str, str]]: ...
    def no_sandbox_notes(self, why: str, host_dir: Path) -> tuple[str, str]:
        """(log line, status-message suffix) for a job that runs without a sandbox: what its
        code gets instead of /opt/ml, which differs between kinds."""
        ...


class JobRunner:
    def __init__(
        self,
        kind: JobKind,
        jobs: JobService,
        store: ObjectStore,
        logs: LogService,
        backend: Backend,
        allocator: Allocator,
        catalog: Catalog,
        clock: Clock,
        config: RunnerConfig,
        queue: JobQueue | None = None,
    ) -> None:
        self.kind = kind
        self.jobs = jobs
        self.store = store
        self.logs = logs
        self.backend = backend
        self.allocator = allocator
        self.catalog = catalog
        self.clock = clock
        self.config = config
        # One FIFO over every kind of job that waits (training and processing share it).
        self.queue = queue or JobQueue()
        self.queue.register(kind.label, self._waiting)
        # Every task in flight, per job: a job with any is skipped by tick() (its step is
        # under way). Kept per task, so one task's end never forgets another's.
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}
        self._staging: dict[str, asyncio.Task[None]] = {}
        self._restored: set[str] = set()
        self._progress_at: dict[str, float] = {}
        self._scanners: dict[str, metrics.MetricScanner] = {}
        # Ports of distributed launchers (torchrun's master, TF workers), held until the end.
        self.ports = PortBook()

    # -- the loop's entry point -------------------------------------------------------

    async def tick(self) -> bool:
        """Next step of every unfinished job; True while any is past the queue."""
        queue_blocked = False
        busy = False
        active = self.jobs.active()
        waiting = self._waiting(active)
        if waiting:
            self.queue.refresh(self.kind.label, waiting)
        for job in active:
            status = secondary_of(job)
            busy = busy or status is not S.STARTING
            if job.name in self._tasks:
                with contextlib.suppress(StatusConflict):  # the API moved it meanwhile
                    self._interrupt_staging(job, status)
                continue
            try:
                self._restore(job)
                if status is S.STARTING:
                    queue_blocked = self._admit(job, queue_blocked)
                elif status is S.DOWNLOADING:
                    self._spawn(job, self._stage_and_launch(job), staging=True)
                elif status is S.TRAINING:
                    self._watch(job)
                elif status is S.STOPPING:
                    self._stopping(job)
                elif status is S.UPLOADING:
                    self._spawn(job, self._finish(job))
            except StatusConflict:
                continue  # an API call moved it meanwhile; next tick sees the new state
            except Exception:
                log.exception("scheduler step for %s %s failed", self.kind.label, job.name)
        return busy or bool(self._tasks)

    async def cancel(self) -> None:
        tasks = [t for group in self._tasks.values() for t in group]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, job: Resource, coro: Any, *, staging: bool = False) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.setdefault(job.name, set()).add(task)
        if staging:
            self._staging[job.name] = task
        task.add_done_callback(functools.partial(self._forget, job.name))

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        group = self._tasks.get(name)
        if group is not None:
            group.discard(task)
            if not group:
                del self._tasks[name]
        if self._staging.get(name) is task:
            del self._staging[name]
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s %s: a step failed",
                self.kind.label,
                name,
                exc_info=task.exception(),
            )

    def _interrupt_staging(self, job: Resource, status: S) -> None:
        """A stop, or the runtime limit, while staging: cancel it; ``_stopping`` ends the job.

        Staging only awaits between files, and nothing has started before it is done, so a
        cancelled staging leaves no process behind.
        """
        task = self._staging.get(job.name)
        if task is None or task.done():
            return
        if status is S.DOWNLOADING and self._past_deadline(job):
            self.jobs.move(
                job.name,
                S.DOWNLOADING,
                S.STOPPING,
                message="Stopping: MaxRuntimeInSeconds exceeded",
                extra={"stop_reason": "max_runtime"},
            )
            status = S.STOPPING
        if status is S.STOPPING:
            task.cancel()

    def _past_deadline(self, job: Resource) -> bool:
        """``MaxRuntimeInSeconds``, counted from the job's start on its hosts (staging too)."""
        limit = (job.spec.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        since = job.extra.get("admitted_at") or job.extra.get("started_at")
        if not limit or not since:
            return False
        return (self.clock.now() - to_datetime(since)).total_seconds() > float(limit)

    def _restore(self, job: Resource) -> None:
        """After a restart, re-register what a job held; once per job and process."""
        if job.name in self._restored:
            return
        self._restored.add(job.name)
        grants = job.extra.get("grants")
        if grants and job.name not in self.allocator.holders():
            lost = self.allocator.restore(job.name, grants)
            if lost:  # kept on the job's books; the log and the status message say so
                notes = list(job.extra.get("gpu_warnings") or [])
                self.jobs.update(job.name, {"gpu_warnings": notes + lost})
                for stream in (job.extra.get("log_streams") or {}).values():
                    self._system_log(stream, [f"WARNING: sageport: {n}" for n in lost])

    def _waiting(self, active: Sequence[Resource] | None = None) -> list[QueuedJob]:
        """This kind's jobs that wait for resources (the queue's source)."""
        jobs = self.jobs.active() if active is None else active
        return [
            QueuedJob(j.created_at, self.kind.label, j.name)
            for j in jobs
            if secondary_of(j) is S.STARTING and j.name not in self._tasks
        ]

    # -- steps ----------------------------------------------------------------------

    def _admit(self, job: Resource, blocked: bool) -> bool:
        """FIFO over every kind (``scheduler.queue``): only the job first in line may start;
        the first that does not fit blocks every later one. One that could never start here
        (the machine changed since it was accepted) fails instead of blocking the queue."""
        try:
            hosts = self.kind.hosts(self.catalog, job.spec)
            never = self.allocator.impossible(hosts)
        except ValidationException as exc:
            never = exc.message
        if never:
            self.queue.leave(self.kind.label, job.name)
            self._spawn(job, self._fail_early(job, S.STARTING, never))
            return blocked
        ahead = self.queue.ahead_of(self.kind.label, job.name)
        grants = None if ahead else self.allocator.try_allocate(job.name, hosts)
        if grants is None:
            waiting = (
                f"Waiting for {ahead.describe()}, ahead of it in the queue"
                if ahead
                else self.allocator.waiting_for(hosts)
            )
            if job.extra.get("queue_message") != waiting:
                self.jobs.update(job.name, {"queue_message": waiting})
            return True
        self.queue.leave(self.kind.label, job.name)
        warnings = list(dict.fromkeys(fallback_status(g) for g in grants if g.cpu_fallback))
        self.jobs.move(
            job.name,
            S.STARTING,
            S.DOWNLOADING,
            extra={
                "grants": [g.to_json() for g in grants],
                "sandbox": self.config.sandbox,
                "admitted_at": self.clock.now().isoformat(),
                **({"gpu_warnings": warnings} if warnings else {}),
            },
        )
        self._spawn(job, self._stage_and_launch(self.jobs.get(job.name)), staging=True)
        return False

    def _context(self, job: Resource) -> JobContext:
        return JobContext(
            name=job.name,
            arn=job.arn,
            spec=job.spec,
            job_dir=self.config.jobs_dir / self.kind.folder / job.name,
            sandbox=bool(job.extra.get("sandbox", self.config.sandbox)),
            region=self.config.region,
            endpoint_url=self.config.endpoint_url,
            access_key=self.config.access_key,
            secret_key=self.config.secret_key,
            images=self.config.images,
            stop_grace_s=self.config.stop_grace_s,
            server_env=self.config.server_env,
            max_log_bytes=self.config.max_log_bytes,
            sandbox_note=self.config.sandbox_note,
            ports=self.ports,
        )

    async def _stage_and_launch(self, job: Resource) -> None:
        ctx = self._context(job)
        hosts = self.kind.host_names(job.spec)
        stream_epoch = int(time.time())
        streams = {h: f"{job.name}/{h}-{stream_epoch}" for h in hosts}
        self._system_log(streams[hosts[0]], self._intro(job, ctx))
        handles: dict[str, Any] = {}
        try:
            files = size = 0
            for host in hosts:
                n, b = await self.kind.stage(ctx, host, self.store)
                files, size = files + n, size + b
            self._system_log(
                streams[hosts[0]], [f"Staged {files} input files ({size / 2**20:.1f} MiB)"]
            )
            if secondary_of(self.jobs.get(job.name)) is not S.DOWNLOADING:
                return  # stopped while staging: _stopping() finishes it
            grants = self.allocator.grants_from_json(job.extra.get("grants", []))
            for host, grant in zip(hosts, grants, strict=True):
                spec, notes = self.kind.launch(ctx, host, grant)
                self._system_log(streams[host], notes)
                handles[host] = self.backend.start(spec).to_json()
        except (TransferError, ContractError, OSError, ValueError) as exc:
            for started in handles.values():  # hosts started before one failed to
                self.backend.kill(HostHandle.from_json(started))
            await self._fail_early(job, S.DOWNLOADING, str(exc))
            return
        # The handles are stored before the move: a stop that slips in between then finds
        # the processes (``_stopping`` terminates them) instead of leaving them unrecorded.
        self.jobs.update(
            job.name,
            {
                "hosts": handles,
                "log_streams": streams,
                "log_offsets": {},
                "started_at": self.clock.now().isoformat(),
            },
        )
        message = T.MESSAGES[S.TRAINING]
        if not ctx.sandbox:
            _, note = self.kind.no_sandbox_notes(self.config.sandbox_note, ctx.job_dir / hosts[0])
            message += f" ({note})"
        # A stop that came meanwhile wins: _stopping() terminates what was started.
        with contextlib.suppress(StatusConflict):
            self.jobs.move(job.name, S.DOWNLOADING, S.TRAINING, message=message)

    def _intro(self, job: Resource, ctx: JobContext) -> list[str]:
        grants = job.extra.get("grants", [])
        gpus = [g.get("gpus", []) for g in grants]
        lines = [
            f"sageport: {self.kind.label} {job.name} on {len(grants)} host(s); GPUs per host: {gpus}"
        ]
        if ctx.sandbox:
            lines.append(
                "sageport: each host runs in a bubblewrap sandbox with its folder at /opt/ml"
            )
        else:
            host_dir = ctx.job_dir / self.kind.host_names(job.spec)[0]
            lines.append(self.kind.no_sandbox_notes(self.config.sandbox_note, host_dir)[0])
        return lines

    async def _fail_early(self, job: Resource, at: S, reason: str) -> None:
        log.info("%s %s failed before running: %s", self.kind.label, job.name, reason)
        try:
            self.jobs.move(
                job.name,
                at,
                S.FAILED,
                message=reason[:1024],
                extra={"failure_reason": reason[:1024], "ended_at": self.clock.now().isoformat()},
            )
        except StatusConflict:
            current = secondary_of(self.jobs.get(job.name))
            if current is S.STOPPING:
                self.jobs.move(
                    job.name,
                    S.STOPPING,
                    S.STOPPED,
                    extra={"ended_at": self.clock.now().isoformat()},
                )
        self.allocator.release(job.name)
        self.ports.release(job.name)

    def _handles(self, job: Resource) -> dict[str, HostHandle]:
        return {h: HostHandle.from_json(v) for h, v in (job.extra.get("hosts") or {}).items()}

    def _watch(self, job: Resource) -> None:
        exits = self._poll_and_ship(job)
        now = time.monotonic()
        if now - self._progress_at.get(job.name, 0.0) >= PROGRESS_INTERVAL_S:
            self._progress_at[job.name] = now
            self._spawn(job, self._progress(job))
        if all(e is not None for e in exits.values()):
            self.jobs.move(
                job.name,
                S.TRAINING,
                S.UPLOADING,
                extra={"exits": {h: e.to_json() for h, e in exits.items() if e}},
            )
            self._spawn(job, self._finish(self.jobs.get(job.name)))
            return
        failed = [(h, e) for h, e in exits.items() if e is not None and e.returncode != 0]
        if failed and not job.extra.get("terminated_at"):
            # As on SageMaker, one failed instance ends the job: the others would otherwise
            # wait for it (a distributed job's ranks block in their next collective).
            host, info = failed[0]
            streams = job.extra.get("log_streams") or {}
            for other, stream in streams.items():
                if exits.get(other) is None:
                    self._system_log(
                        stream,
                        [
                            f"sageport: {host} failed (exit {info.returncode}); stopping "
                            f"{other}, as SageMaker ends a job when one of its instances fails"
                        ],
                    )
            self._terminate(job)
            return
        if self._past_deadline(job):
            self.jobs.move(
                job.name,
                S.TRAINING,
                S.STOPPING,
                message="Stopping: MaxRuntimeInSeconds exceeded",
                extra={"stop_reason": "max_runtime"},
            )
            self._terminate(self.jobs.get(job.name))

    async def _progress(self, job: Resource) -> None:
        seen = {k: list(v) for k, v in (job.extra.get("uploaded") or {}).items()}
        before = dict(seen)
        try:
            await self.kind.progress(self._context(job), self.store, seen)
        except (TransferError, OSError) as exc:
            log.warning("%s %s: progress step failed: %s", self.kind.label, job.name, exc)
        if seen != before:
            self.jobs.update(job.name, {"uploaded": seen})

    def _stopping(self, job: Resource) -> None:
        handles = self._handles(job)
        if not handles:
            # Stopped before any process started (queued, or staging was interrupted).
            self.allocator.release(job.name)
            self.ports.release(job.name)
            self.jobs.move(
                job.name,
                S.STOPPING,
                self._stopped_status(job),
                extra={"ended_at": self.clock.now().isoformat()},
            )
            return
        if not job.extra.get("terminated_at"):
            self._terminate(job)
        exits = self._poll_and_ship(job)
        if all(e is not None for e in exits.values()):
            self.jobs.update(job.name, {"exits": {h: e.to_json() for h, e in exits.items() if e}})
            self._spawn(job, self._finish(self.jobs.get(job.name)))

    def _terminate(self, job: Resource) -> None:
        for handle in self._handles(job).values():
            self.backend.terminate(handle)
        self.jobs.update(job.name, {"terminated_at": self.clock.now().isoformat()})

    def _poll_and_ship(self, job: Resource) -> dict[str, ExitInfo | None]:
        """Each host's exit (None while it runs, or while its log is not yet all shipped),
        after shipping its new log records, error tail and metric matches."""
        exits: dict[str, ExitInfo | None] = {}
        offsets = dict(job.extra.get("log_offsets") or {})
        streams = job.extra.get("log_streams") or {}
        scanner = self._scanner(job)
        states = metrics.load_states(job.extra.get("metric_states"))
        points: list[tuple[str, float, float]] = []
        # stderr tails per host: the traceback a failure reason quotes, without our own log lines
        tails: dict[str, list[str]] = {
            h: list(v) for h, v in (job.extra.get("error_tails") or {}).items()
        }
        truncated = dict(job.extra.get("log_truncated") or {})
        # hosts whose launcher (torchrun) reported a failed worker: what follows is its own
        # account of it, and the tail keeps the script's error instead
        frozen = set(job.extra.get("tails_frozen") or [])
        changed = False
        for host, handle in self._handles(job).items():
            exit_info = self.backend.poll(handle)  # poll first: then the log read below is complete
            offset = int(offsets.get(host, 0))
            drained = False
            for _ in range(DRAIN_READS_PER_TICK if exit_info is not None else 1):
                records, new_offset = self.backend.read_log(handle, offset)
                if new_offset == offset:
                    drained = True
                    break
                offset = offsets[host] = new_offset
                changed = True
                if not records:
                    continue
                self.logs.put_events(
                    self.kind.log_group,
                    streams.get(host, f"{job.name}/{host}"),
                    [(r.timestamp_ms, r.message) for r in records],
                )
                errors: list[str] = []
                for r in records:
                    if r.stream != "stderr" or host in frozen:
                        continue
                    if launcher_failure_line(r.message):
                        frozen.add(host)
                    else:
                        errors.append(r.message)
                if errors:
                    tails[host] = (tails.get(host, []) + errors)[-ERROR_TAIL_LINES:]
                for r in records:
                    if r.stream == "system" and r.message.startswith(TRUNCATION_NOTE):
                        truncated[host] = r.message
                    if scanner:
                        points.extend(
                            (name, r.timestamp_ms / 1000, value)
                            for name, value in scanner.scan(r.message)
                        )
            exits[host] = exit_info if drained else None
        if changed:
            update: dict[str, Any] = {"log_offsets": offsets, "error_tails": tails}
            if frozen:
                update["tails_frozen"] = sorted(frozen)
            series = metrics.MetricSeries(self.config.jobs_dir / self.kind.folder / job.name)
            if series.record(states, points):
                update["metric_states"] = metrics.dump_states(states)
            if truncated != (job.extra.get("log_truncated") or {}):
                update["log_truncated"] = truncated
            self.jobs.update(job.name, update)
        return exits

    def _scanner(self, job: Resource) -> metrics.MetricScanner:
        scanner = self._scanners.get(job.name)
        if scanner is None:
            scanner = metrics.MetricScanner(self.kind.metric_definitions(job.spec))
            self._scanners[job.name] = scanner
        return scanner

    def _system_log(self, stream: str, lines: list[str]) -> None:
        if lines:
            now = int(time.time() * 1000)
            self.logs.put_events(self.kind.log_group, stream, [(now, line) for line in lines])

    async def _finish(self, job: Resource) -> None:
        """Store artifacts (also for failed and stopped jobs), then end the job."""
        ctx = self._context(job)
        exits = {h: ExitInfo.from_json(e) for h, e in (job.extra.get("exits") or {}).items()}
        # The host that ended first comes first: after one instance failed and the others were
        # stopped, the failure reason is its own, not a stopped one's.
        exits = dict(sorted(exits.items(), key=lambda item: item[1].ended_at))
        status = secondary_of(job)
        extra: dict[str, Any] = {"ended_at": self.clock.now().isoformat()}
        try:
            stored = await self.kind.store_outputs(ctx, self.store, self.kind.host_names(job.spec))
            extra.update(stored)
        except (TransferError, OSError) as exc:
            extra["failure_reason"] = f"Uploading the job's artifacts failed: {exc}"[:1024]
        states = metrics.load_states(job.extra.get("metric_states"))
        if states:
            extra["final_metrics"] = metrics.final_metrics(states)
        if status is S.STOPPING:
            end = self._stopped_status(job)
        else:
            reason = extra.get("failure_reason") or artifacts.failure_reason(
                ctx, exits, self._tails(job)
            )
            end = S.FAILED if reason else S.COMPLETED
            if reason:
                extra["failure_reason"] = reason
        self.jobs.move(
            job.name,
            status,
            end,
            message=extra.get("failure_reason") if end is S.FAILED else None,
            extra=extra,
        )
        self.allocator.release(job.name)
        self.ports.release(job.name)
        self._scanners.pop(job.name, None)
        self._progress_at.pop(job.name, None)

    @staticmethod
    def _stopped_status(job: Resource) -> S:
        return (
            S.MAX_RUNTIME_EXCEEDED if job.extra.get("stop_reason") == "max_runtime" else S.STOPPED
        )

    def _tails(self, job: Resource) -> dict[str, list[str]]:
        """Per host, the stderr tail; else the tail of its log stream (stdout included)."""
        streams = job.extra.get("log_streams") or {}
        stderr = job.extra.get("error_tails") or {}
        return {
            host: list(
                stderr.get(host) or self.logs.tail(self.kind.log_group, stream, ERROR_TAIL_LINES)
            )
            for host, stream in streams.items()
        }
