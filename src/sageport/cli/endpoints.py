"""``sageport endpoints list|describe|invoke|logs``: endpoints on the running server, from a shell.

Clients like ``sageport jobs``: boto3 against the address and keys in the data folder, plus
sageport's own ``GET /_sageport/endpoints/<name>`` for what DescribeEndpoint has no field for
(each instance's GPUs and restarts, the batch-size histogram of each variant). Every command
takes ``--json``; failures are one line on stderr and exit status 1.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from sageport.cli.remote import (
    LogReader,
    client,
    guarded,
    list_command,
    print_fields,
    sageport_api,
    to_json,
    when,
)
from sageport.settings import Settings

LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
SETTLED = ("InService", "Failed", "UpdateRollbackFailed")


def list_endpoints(
    settings: Settings, as_json: bool, name_contains: str | None, status: str | None
) -> int:
    """Newest first: name, status, created, last modified."""
    columns = [
        ("NAME", lambda e: str(e["EndpointName"])),
        ("STATUS", lambda e: str(e["EndpointStatus"])),
        ("CREATED", lambda e: when(e.get("CreationTime"))),
        ("MODIFIED", lambda e: when(e.get("LastModifiedTime"))),
    ]
    return list_command(
        settings,
        "list_endpoints",
        "Endpoints",
        columns,
        as_json=as_json,
        filters={"NameContains": name_contains, "StatusEquals": status},
    )


def describe_endpoint(settings: Settings, name: str, as_json: bool) -> int:
    """DescribeEndpoint plus the instances, their GPUs and each variant's batch sizes."""

    def run() -> int:
        desc = dict(client(settings, "sagemaker").describe_endpoint(EndpointName=name))
        desc.pop("ResponseMetadata", None)
        report = sageport_api(settings, f"endpoints/{name}")
        if as_json:
            desc["Sageport"] = report
            typer.echo(to_json(desc))
            return 0
        fields: list[tuple[str, str]] = [
            ("Name", desc["EndpointName"]),
            ("Status", desc["EndpointStatus"]),
            ("Config", desc.get("EndpointConfigName", "-")),
            ("Created", when(desc.get("CreationTime"))),
            ("Modified", when(desc.get("LastModifiedTime"))),
        ]
        if desc.get("FailureReason"):
            fields.append(("Failure", desc["FailureReason"]))
        stats = {v["VariantName"]: v for v in report.get("Variants", [])}
        for v in desc.get("ProductionVariants") or []:
            vname = v["VariantName"]
            fields.append(
                (
                    f"Variant {vname}",
                    f"{v['CurrentInstanceCount']}/{v['DesiredInstanceCount']} instances, "
                    f"weight {v['CurrentWeight']:g}"
                    + (
                        f" (desired {v['DesiredWeight']:g})"
                        if v["DesiredWeight"] != v["CurrentWeight"]
                        else ""
                    ),
                )
            )
            for note in v.get("VariantStatus") or []:
                fields.append(("  " + note["Status"], str(note.get("StatusMessage", ""))))
            stat = stats.get(vname)
            if stat:
                batching = stat.get("Batching")
                fields.append(
                    (
                        "  Requests",
                        f"{stat['Invocations']} invocations, {stat['Errors']} errors; batching "
                        + (
                            f"on (size {batching['batch_size']}, delay {batching['max_delay_ms']:g} ms)"
                            if batching
                            else "off"
                        ),
                    )
                )
                histogram = stat.get("BatchSizeHistogram") or {}
                fields.append(
                    (
                        "  Batch sizes",
                        "  ".join(f"{k}: {n}" for k, n in histogram.items())
                        + f"  (mean {stat['MeanBatchSize']:g})"
                        if histogram
                        else "none observed yet",
                    )
                )
            for inst in report.get("Instances", []):
                if inst["VariantName"] != vname:
                    continue
                gpus = ",".join(str(g) for g in inst["Gpus"]) or "none"
                state = "ready" if inst["Ready"] else "starting"
                restarts = f", {inst['Restarts']} restart(s)" if inst["Restarts"] else ""
                last = inst.get("LastRestart") or {}
                if last:
                    restarts += f", last at {last['time']}: {last['reason']}"
                fields.append(
                    (
                        f"  {inst['InstanceId']}",
                        f"{inst['InstanceType']} {inst['Role']} {state}, GPUs {gpus}{restarts}",
                    )
                )
        pending = desc.get("PendingDeploymentSummary")
        if pending:
            fields.append(("Pending config", pending["EndpointConfigName"]))
            for v in pending.get("ProductionVariants") or []:
                for note in v.get("VariantStatus") or []:
                    fields.append((f"  {v['VariantName']}", str(note.get("StatusMessage", ""))))
        print_fields(fields)
        return 0

    return guarded(settings, run)


def invoke_endpoint(
    settings: Settings,
    name: str,
    body: str | None,
    body_file: Path | None,
    content_type: str,
    accept: str | None,
    target_variant: str | None,
    custom_attributes: str | None,
    as_json: bool,
) -> int:
    """InvokeEndpoint with the body given (``--body``, ``--file``, or stdin); prints the answer."""

    def run() -> int:
        if body is not None:
            payload = body.encode()
        elif body_file is not None:
            payload = body_file.read_bytes()
        else:
            payload = sys.stdin.buffer.read()
        kwargs: dict[str, Any] = {
            "EndpointName": name,
            "Body": payload,
            "ContentType": content_type,
        }
        if accept:
            kwargs["Accept"] = accept
        if target_variant:
            kwargs["TargetVariant"] = target_variant
        if custom_attributes:
            kwargs["CustomAttributes"] = custom_attributes
        resp = client(settings, "sagemaker-runtime").invoke_endpoint(**kwargs)
        data: bytes = resp["Body"].read()
        if as_json:
            out: dict[str, Any] = {
                "ContentType": resp.get("ContentType"),
                "InvokedProductionVariant": resp.get("InvokedProductionVariant"),
            }
            if resp.get("CustomAttributes"):
                out["CustomAttributes"] = resp["CustomAttributes"]
            try:
                out["Body"] = data.decode("utf-8")
            except UnicodeDecodeError:
                out["BodyBase64"] = base64.b64encode(data).decode()
            typer.echo(to_json(out))
            return 0
        sys.stdout.buffer.write(data)
        if not data.endswith(b"\n") and sys.stdout.isatty():
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
        return 0

    return guarded(settings, run)


def show_logs(
    settings: Settings, name: str, follow: bool, as_json: bool, interval: float = 0.5
) -> int:
    """The endpoint's log events, instance by instance; with ``follow`` until interrupted
    (or the endpoint is gone). ``--json`` is JSON Lines like ``sageport logs``: each event is
    printed as it arrives, so following works through ``| jq``."""

    def run() -> int:
        from botocore.exceptions import ClientError

        sm = client(settings, "sagemaker")
        sm.describe_endpoint(EndpointName=name)  # an unknown endpoint is an error, not silence
        reader = LogReader(client(settings, "logs"), LOG_GROUP_PREFIX + name)
        while True:
            for stream, message in reader.read():
                if as_json:
                    typer.echo(json.dumps({"logStreamName": stream, "message": message}))
                else:
                    typer.echo(f"[{stream}] {message}")
            if not follow:
                break
            try:
                sm.describe_endpoint(EndpointName=name)
            except ClientError:
                break  # deleted: nothing more will come
            time.sleep(interval)
        return 0

    return guarded(settings, run)
