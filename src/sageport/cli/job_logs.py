"""``sageport logs JOB [-f] [--json]``: what CloudWatch Logs holds for a training or processing job.

The job's streams (``<job>/<host>-<epoch>``, one per host) are read from the head, stream by
stream; with ``--follow``, again every :data:`FOLLOW_INTERVAL_S` until the job has ended. The
status is read before the events, so the events shipped before a job ended are all printed.

Plain output is the messages (each prefixed with ``[<host>-<epoch>]`` when there are several
streams). ``--json`` is JSON Lines, one object per event, so ``| jq`` works while following::

    {"timestamp": "2024-05-01T12:00:00.123Z", "host": "algo-1",
     "stream": "my-job/algo-1-1714564800", "message": "epoch 1 loss 0.25"}

(one line each; ``timestamp`` is the event's, ISO 8601 in UTC).
"""

from __future__ import annotations

import json
import time

import typer

from sageport.cli.jobs import TERMINAL, find_jobs, not_found
from sageport.cli.remote import LogEvent, LogReader, client, guarded
from sageport.settings import Settings

#: how often ``logs -f`` asks for new events; the server ships job output every poll interval.
FOLLOW_INTERVAL_S = 0.5


def show_logs(
    settings: Settings,
    name: str,
    follow: bool,
    interval: float = FOLLOW_INTERVAL_S,
    job_type: str | None = None,
    as_json: bool = False,
) -> int:
    """Print the job's log events, host by host; with ``follow``, until the job has ended.

    The job is a training or a processing job (``job_type`` says which when both exist:
    without it the training job's are shown, and stderr says so); a name that is neither is
    an error that says so.
    """

    def run() -> int:
        sm = client(settings, "sagemaker")
        found = find_jobs(sm, name, job_type)
        if not found:
            raise not_found(name, job_type)
        kind = found[0][0]
        if len(found) > 1:
            typer.echo(
                f"note: {name!r} is a training job and a processing job; showing the training "
                "job's logs (--kind processing for the other)",
                err=True,
            )
        reader = LogReader(client(settings, "logs"), kind.log_group, f"{name}/")
        while True:
            # Read the status first: events shipped before it are then all read below.
            ended = kind.status(sm, name) in TERMINAL
            events = list(reader.events())
            many = len(reader.tokens) > 1
            for event in events:
                if as_json:
                    typer.echo(json_line(event))
                else:
                    prefix = f"[{event.stream.split('/', 1)[-1]}] " if many else ""
                    typer.echo(prefix + event.message)
            if not follow or ended:
                return 0
            time.sleep(interval)

    return guarded(settings, run)


def json_line(event: LogEvent) -> str:
    """One event as one line of JSON (``json.dumps`` escapes a newline in the message)."""
    return json.dumps(
        {
            "timestamp": event.when(),
            "host": host_of(event.stream),
            "stream": event.stream,
            "message": event.message,
        }
    )


def host_of(stream: str) -> str:
    """``algo-2`` of ``<job>/algo-2-1714564800``: the stream's name less the job and the epoch
    the server started it at (a stream named otherwise: all of it after the job)."""
    tail = stream.split("/", 1)[-1]
    host, _, epoch = tail.rpartition("-")
    return host if host and epoch.isdigit() else tail
