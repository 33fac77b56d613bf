"""``sageport quickstart``: the first thing a new user runs.

It starts a server on a scratch port, does a short round trip with plain boto3 — the same
calls SageMaker SDK code makes first (S3 bucket and object, a SageMaker model) — prints
each step, and stops the server. Later work grows this into train → deploy → predict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer

from sageport.cli.process import ServerProcess
from sageport.settings import Settings


def _step(title: str, fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = fn()
    typer.echo(f"  ok  {title}  ({(time.perf_counter() - started) * 1000:.1f} ms)")
    return result


def run_quickstart(settings: Settings, port: int = 0) -> int:
    server = ServerProcess(settings.data_dir, port or None, settings.region)
    typer.echo(f"Starting sageport serve on {server.url} (data: {settings.data_dir}) ...")
    server.start()
    try:
        s3 = server.client("s3")
        sm = server.client("sagemaker")
        sts = server.client("sts")
        bucket = "sageport-quickstart"
        ident = _step("sts.get_caller_identity", sts.get_caller_identity)
        typer.echo(f"      account {ident['Account']}")
        existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        if bucket not in existing:
            _step(f"s3.create_bucket {bucket}", lambda: s3.create_bucket(Bucket=bucket))
        _step(
            "s3.put_object hello.txt",
            lambda: s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello sageport\n"),
        )
        body = _step(
            "s3.get_object hello.txt",
            s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read,
        )
        typer.echo(f"      read back {body!r}")
        name = f"quickstart-{int(time.time())}"
        role = f"arn:aws:iam::{settings.account_id}:role/SageportExecutionRole"
        _step(
            f"sagemaker.create_model {name}",
            lambda: sm.create_model(
                ModelName=name,
                ExecutionRoleArn=role,
                PrimaryContainer={
                    "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310",
                    "ModelDataUrl": f"s3://{bucket}/model.tar.gz",
                },
            ),
        )
        desc = _step(f"sagemaker.describe_model {name}", lambda: sm.describe_model(ModelName=name))
        typer.echo(f"      {desc['ModelArn']}")
        _step(f"sagemaker.delete_model {name}", lambda: sm.delete_model(ModelName=name))
        typer.echo(
            '\nsageport works. Point your own code at it with:  eval "$(sageport env)"  after  sageport serve'
        )
        return 0
    except Exception as exc:
        typer.secho(
            f"quickstart failed: {type(exc).__name__}: {exc}", fg=typer.colors.RED, err=True
        )
        typer.echo(server.log_tail(), err=True)
        return 1
    finally:
        server.stop()
