"""The ``sageport`` command. Thin: each command builds settings and calls the library or API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from sageport.settings import DEFAULT_PORT, Settings, default_data_dir

app = typer.Typer(add_completion=False, no_args_is_help=True, help="The SageMaker API on your own machines.")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data folder (default $SAGEPORT_HOME or ~/.sageport).")]


def _settings(data_dir: Path | None, **kw: object) -> Settings:
    return Settings(data_dir=(data_dir or default_data_dir()).expanduser().resolve(), **kw)  # type: ignore[arg-type]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback is reachable by others.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    data_dir: DataDir = None,
) -> None:
    """Start the server: SageMaker, SageMaker Runtime, S3, CloudWatch Logs and STS on one port."""
    import uvicorn

    from sageport.api.app import create_app
    from sageport.cli.serverinfo import write_server_files

    settings = _settings(data_dir, host=host, port=port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"WARNING: binding to {host}: anyone who can reach this address and holds the keys in "
            f"{settings.credentials_file} can run code on this machine.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    application = create_app(settings)
    write_server_files(settings)
    typer.echo(f"sageport serving on {settings.endpoint_url} (data: {settings.data_dir})", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


@app.command()
def env(data_dir: DataDir = None) -> None:
    """Print export lines that point boto3 and the SageMaker SDK at the server: eval "$(sageport env)"."""
    from sageport.cli.serverinfo import env_lines

    for line in env_lines(_settings(data_dir)):
        typer.echo(line)


@app.command()
def quickstart(data_dir: DataDir = None, port: int = 0) -> None:
    """Start a server on a scratch port, run a short boto3 round trip against it, and stop it."""
    from sageport.cli.quickstart import run_quickstart

    raise typer.Exit(run_quickstart(_settings(data_dir), port))


@app.command()
def instances(
    names: Annotated[list[str] | None, typer.Argument(help="Instance types to show.")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="At least this many GPUs.")] = None,
    gpu_model: Annotated[str | None, typer.Option("--gpu-model", help="GPU model, e.g. A10G.")] = None,
    min_gpu_memory: Annotated[float | None, typer.Option("--min-gpu-memory", help="GB per GPU.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List ml.* instance types that fit, cheapest first, and name the cheapest."""
    from sageport.cli.instances import instances_command

    raise typer.Exit(instances_command(gpus, gpu_model, min_gpu_memory, as_json, names or ()))


def main() -> None:
    app()
