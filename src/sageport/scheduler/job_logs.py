"""A running job's output: its log records shipped, its error tail and metrics kept.

Each tick, every host's new log records go to the kind's log group (one stream per host);
on the way, the stderr lines are kept as the host's error tail (what a FailureReason quotes),
a truncation note is remembered, and ``MetricDefinitions`` matches are recorded as metric
points. Everything is stored with the job (offsets included), so a restarted server ships
from where it was. A host counts as exited only once its log is drained: the whole log is in
the log group before the job ends.
"""

from __future__ import annotations

from dataclasses import replace

from sageport.backends.base import TRUNCATION_NOTE, ExitInfo
from sageport.domain.runtime import JobRuntime
from sageport.runtime import metrics
from sageport.runtime.distribution import launcher_failure_line
from sageport.scheduler.job_parts import JobParts
from sageport.store.resources import Resource

ERROR_TAIL_LINES = 10
DRAIN_READS_PER_TICK = 4
"""Once a host has exited, up to this many log reads per tick until its log is drained (a
running host gets one read per tick): the whole log is shipped before the job ends, without
one flood stalling the server for the time a huge backlog takes."""


class JobLogs:
    """Ship the log records of one kind's jobs; keeps a metric scanner per running job."""

    def __init__(self, parts: JobParts) -> None:
        self.parts = parts
        self._scanners: dict[str, metrics.MetricScanner] = {}

    def system_log(self, stream: str, lines: list[str]) -> None:
        """Lines from sageport itself into ``stream`` of the kind's log group, stamped with the
        clock's time."""
        if lines:
            now = int(self.parts.clock.now().timestamp() * 1000)
            self.parts.logs.put_events(
                self.parts.kind.log_group, stream, [(now, line) for line in lines]
            )

    def poll_and_ship(self, job: Resource) -> dict[str, ExitInfo | None]:
        """Each host's exit (None while it runs, or while its log is not yet all shipped),
        after shipping its new log records, error tail and metric matches."""
        p = self.parts
        exits: dict[str, ExitInfo | None] = {}
        rt = JobRuntime.from_json(job.state)
        offsets = dict(rt.log_offsets)
        streams = rt.log_streams
        scanner = self._scanner(job)
        states = metrics.load_states(rt.metric_states)
        points: list[tuple[str, float, float]] = []
        # stderr tails per host: the traceback a failure reason quotes, without our own log lines
        tails: dict[str, list[str]] = {h: list(v) for h, v in rt.error_tails.items()}
        truncated = dict(rt.log_truncated)
        # hosts whose launcher (torchrun) reported a failed worker: what follows is its own
        # account of it, and the tail keeps the script's error instead
        frozen = set(rt.tails_frozen)
        changed = False
        for host, handle in p.handles(job).items():
            exit_info = p.backend.poll(handle)  # poll first: then the log read below is complete
            offset = int(offsets.get(host, 0))
            drained = False
            for _ in range(DRAIN_READS_PER_TICK if exit_info is not None else 1):
                records, new_offset = p.backend.read_log(handle, offset)
                if new_offset == offset:
                    drained = True
                    break
                offset = offsets[host] = new_offset
                changed = True
                if not records:
                    continue
                p.logs.put_events(
                    p.kind.log_group,
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
            series = metrics.MetricSeries(p.job_dir(job.name))
            recorded = metrics.dump_states(states) if series.record(states, points) else None

            def shipped(r: JobRuntime) -> JobRuntime:
                return replace(
                    r,
                    log_offsets=offsets,
                    error_tails=tails,
                    tails_frozen=sorted(frozen) if frozen else r.tails_frozen,
                    metric_states=r.metric_states if recorded is None else recorded,
                    log_truncated=truncated if truncated != rt.log_truncated else r.log_truncated,
                )

            p.jobs.update(job.name, shipped)
        return exits

    def tails(self, job: Resource) -> dict[str, list[str]]:
        """Per host, the stderr tail; else the tail of its log stream (stdout included)."""
        rt = JobRuntime.from_json(job.state)
        streams = rt.log_streams
        stderr = rt.error_tails
        group = self.parts.kind.log_group
        return {
            host: list(stderr.get(host) or self.parts.logs.tail(group, stream, ERROR_TAIL_LINES))
            for host, stream in streams.items()
        }

    def forget(self, name: str) -> None:
        """Job ``name`` has ended: its scanner goes."""
        self._scanners.pop(name, None)

    def _scanner(self, job: Resource) -> metrics.MetricScanner:
        scanner = self._scanners.get(job.name)
        if scanner is None:
            scanner = metrics.MetricScanner(self.parts.kind.metric_definitions(job.spec))
            self._scanners[job.name] = scanner
        return scanner
