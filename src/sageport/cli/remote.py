"""What the client commands (``sageport jobs``, ``logs``, ``endpoints``) share.

They are clients like any other: boto3 against the address the running server recorded in
its data folder (``server.json``) with the keys kept there, so what they show is exactly what
the SDK would see. Here: those clients, sageport's own signed ``/_sageport/`` API, the rule
that failures are one line on stderr and exit status 1 (:class:`CommandError` for the
commands' own), the table and field printers, the ``List*`` command every resource has, and
a reader that follows CloudWatch log streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import typer

from sageport.settings import Settings

EXIT_ERROR = 1


class CommandError(Exception):
    """A request the command cannot answer (no such job, an ambiguous name): :func:`guarded`
    prints ``error: <message>`` on stderr and exits with status 1."""


def client(settings: Settings, service: str) -> Any:
    """A boto3 client for ``service`` on the server that runs on ``settings.data_dir``."""
    import boto3
    from botocore.config import Config

    from sageport.cli.serverinfo import read_endpoint_url
    from sageport.services.credentials import load_or_create

    key = load_or_create(settings.credentials_file)[0]
    return boto3.client(
        service,
        endpoint_url=read_endpoint_url(settings),
        region_name=server_region(settings),
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=60),
    )


def sageport_api(settings: Settings, path: str) -> dict[str, Any]:
    """GET sageport's own API (``/_sageport/<path>``), signed like every request; ``{}``
    when it does not answer (an older server, or none: a describe still shows the rest)."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from sageport.cli.serverinfo import read_endpoint_url
    from sageport.services.credentials import load_or_create

    key = load_or_create(settings.credentials_file)[0]
    req = AWSRequest(method="GET", url=f"{read_endpoint_url(settings)}/_sageport/{path}")
    SigV4Auth(
        Credentials(key.access_key_id, key.secret_access_key), "sagemaker", server_region(settings)
    ).add_auth(req)
    prepared = req.prepare()
    http = urllib.request.Request(prepared.url, headers=dict(prepared.headers), method="GET")
    try:
        with urllib.request.urlopen(http, timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except OSError:
        return {}


def server_region(settings: Settings) -> str:
    """The region the running server recorded, else the settings' one."""
    try:
        return str(json.loads(settings.server_file.read_text())["region"])
    except (OSError, ValueError, KeyError):
        return settings.region


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` (else "")."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def guarded(settings: Settings, action: Callable[[], int]) -> int:
    """Run ``action``; AWS errors and an absent server become one line on stderr."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    from sageport.cli.serverinfo import read_endpoint_url, running_server

    if running_server(settings) is None:
        # not even the default port: a server there serves another data folder, other keys
        typer.echo(
            f"error: no sageport server is running on {settings.data_dir} "
            f"(start one with: sageport serve --data-dir {settings.data_dir})",
            err=True,
        )
        return EXIT_ERROR
    try:
        return action()
    except CommandError as exc:
        typer.echo(f"error: {exc}", err=True)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        typer.echo(f"error: {error.get('Code')}: {error.get('Message')}", err=True)
    except EndpointConnectionError:
        typer.echo(
            f"error: no sageport server answers at {read_endpoint_url(settings)} "
            f"(start one with: sageport serve --data-dir {settings.data_dir})",
            err=True,
        )
    return EXIT_ERROR


def to_json(value: Any) -> str:
    """``value`` as indented JSON, datetimes as ISO 8601."""

    def default(obj: Any) -> str:
        if isinstance(obj, datetime):
            return obj.isoformat()
        raise TypeError(f"not JSON serializable: {type(obj).__name__}")

    return json.dumps(value, indent=2, default=default)


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else "-"


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo(
            "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        )


def print_fields(fields: Sequence[tuple[str, str]]) -> None:
    """``key  value`` lines, the keys padded to one width (what ``describe`` prints)."""
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        typer.echo(f"{key:<{width}}  {value}")


Column = tuple[str, Callable[[Mapping[str, Any]], str]]


def summaries(
    sm: Any,
    operation: str,
    result_key: str,
    filters: Mapping[str, str | None],
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The summaries under ``result_key`` of a ``List*`` call's pages, newest first (at most
    ``limit``), ``filters`` given where set."""
    kwargs: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
    kwargs.update({k: v for k, v in filters.items() if v})
    found: list[dict[str, Any]] = []
    for page in sm.get_paginator(operation).paginate(**kwargs):
        found.extend(page[result_key])
        if limit is not None and len(found) >= limit:
            break
    return found if limit is None else found[:limit]


def list_command(
    settings: Settings,
    operation: str,
    result_key: str,
    columns: Sequence[Column],
    *,
    as_json: bool,
    filters: Mapping[str, str | None],
    limit: int | None = None,
) -> int:
    """A ``List*`` call, newest first, as JSON or a table: the summaries under
    ``result_key`` of every page (at most ``limit``), ``filters`` given where set."""

    def run() -> int:
        found = summaries(client(settings, "sagemaker"), operation, result_key, filters, limit)
        if as_json:
            typer.echo(to_json(found))
            return 0
        table(tuple(h for h, _ in columns), [tuple(f(r) for _, f in columns) for r in found])
        return 0

    return guarded(settings, run)


class LogEvent(NamedTuple):
    """One CloudWatch log event as the reader yields it."""

    stream: str
    message: str
    timestamp_ms: int

    def when(self) -> str:
        """The event's time, ISO 8601 in UTC to the millisecond (``2024-05-01T12:00:00.123Z``)."""
        stamp = datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class LogReader:
    """The streams of one CloudWatch log group (those starting with ``prefix``), read on
    from where the last :meth:`read` stopped, so a follower prints each event once."""

    logs: Any
    group: str
    prefix: str = ""
    tokens: dict[str, str | None] = field(default_factory=dict)

    def read(self) -> Iterator[tuple[str, str]]:
        """(stream, message) for every event not read yet, stream by stream, oldest first."""
        for event in self.events():
            yield event.stream, event.message

    def events(self) -> Iterator[LogEvent]:
        """Every event not read yet, stream by stream, oldest first."""
        for stream in self._streams():
            self.tokens.setdefault(stream, None)
        for stream in sorted(self.tokens):
            for event, token in self._events(stream, self.tokens[stream]):
                self.tokens[stream] = token
                yield event

    def _streams(self) -> list[str]:
        from botocore.exceptions import ClientError

        kwargs = {"logStreamNamePrefix": self.prefix} if self.prefix else {}
        try:
            found = self.logs.describe_log_streams(logGroupName=self.group, **kwargs)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return []  # nothing has logged into the group yet
            raise
        return [s["logStreamName"] for s in found["logStreams"]]

    def _events(self, stream: str, token: str | None) -> Iterator[tuple[LogEvent, str]]:
        """(event, token after it) for every event after ``token``, oldest first."""
        while True:
            kwargs: dict[str, Any] = {"nextToken": token} if token else {"startFromHead": True}
            page = self.logs.get_log_events(logGroupName=self.group, logStreamName=stream, **kwargs)
            next_token = page["nextForwardToken"]
            for event in page["events"]:
                yield LogEvent(stream, event["message"], int(event["timestamp"])), next_token
            if not page["events"] or next_token == token:
                return
            token = next_token
