"""The ``sageport`` command. Thin: each command builds settings and calls the library or API."""

from __future__ import annotations

import enum
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from sageport.settings import DEFAULT_PORT, Settings, default_data_dir

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="The SageMaker API on your own machines."
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data folder (default $SAGEPORT_HOME or ~/.sageport)."),
]


def package_version() -> str:
    """The installed distribution's version; the package's own when it is not installed
    (run from a checkout with ``PYTHONPATH=src``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sageport")
    except PackageNotFoundError:
        from sageport import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sageport {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """The SageMaker API on your own machines."""


def _settings(data_dir: Path | None, **kw: object) -> Settings:
    return Settings(data_dir=(data_dir or default_data_dir()).expanduser().resolve(), **kw)  # type: ignore[arg-type]


def _warn_about_sandbox(settings: Settings) -> None:
    """``sandbox = "off"`` is an opt-in to run other people's code with this process's
    privileges; ``auto`` without a working bwrap refuses jobs. Either is said at start."""
    from sageport.backends.local import INSTALL_HINT, probe_sandbox

    if settings.sandbox == "off":
        message = (
            'sandbox = "off": every job and model server runs unsandboxed with this server\'s '
            f"privileges (uid {os.geteuid()}): it can read {settings.data_dir} (keys, database, "
            "every job's files) and signal the server."
        )
    else:
        available, why = probe_sandbox(uid=settings.sandbox_uid)
        if available:
            return
        message = f"no sandbox ({why}): jobs and endpoints will fail until you {INSTALL_HINT}."
    typer.secho(f"WARNING: {message}", fg=typer.colors.YELLOW, err=True)


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to bind (default: host in sageport.toml, else 127.0.0.1); anything "
            "but loopback is reachable by others.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help=f"Port to listen on (default: port in sageport.toml, else {DEFAULT_PORT}).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Start the server: SageMaker, SageMaker Runtime, S3, CloudWatch Logs and STS on one port."""
    import uvicorn

    from sageport.cli.serverinfo import (
        DataDirBusy,
        hold_data_dir,
        listen_address,
        remove_server_file,
        write_server_files,
    )
    from sageport.wiring import StartupError, build_app

    # One source of truth for the address: the flag if given, else sageport.toml, else the
    # default. What uvicorn binds below is exactly what server.json and `sageport env` say.
    settings = _load_settings("serve", data_dir)
    if host is not None:
        settings = replace(settings, host=host)
    if port is not None:
        settings = replace(settings, port=port)
    try:
        lock = hold_data_dir(settings)  # held until this process exits
    except DataDirBusy as exc:
        _fail(f"sageport serve: {exc}")
    try:
        settings = listen_address(settings)  # a free port for 0; a busy one is refused here
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        _fail(f"sageport serve: cannot listen on {where}: {exc.strerror or exc}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"WARNING: binding to {settings.host}: anyone who can reach this address and holds "
            f"the keys in {settings.credentials_file} can run code on this machine.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    _warn_about_sandbox(settings)
    try:
        application = build_app(settings)
    except StartupError as exc:  # a bad fake_gpus/SAGEPORT_FAKE_GPUS, gpu_matching, ...
        _fail(f"sageport serve: {exc}")
    write_server_files(settings)
    _log_interpreters(settings)
    typer.echo(f"sageport serving on {settings.endpoint_url} (data: {settings.data_dir})", err=True)
    http, loop = _fast_server()
    # uvicorn shuts down on SIGTERM, then raises it again under the handler it found: with
    # the default one the process would die before the clean-up below.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run(
            application,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            # nothing reads the client address or scheme, so X-Forwarded-* need not be parsed
            # on every request (a measurable part of InvokeEndpoint's overhead)
            proxy_headers=False,
            http=http,
            loop=loop,
        )
    finally:
        remove_server_file(settings)  # `sageport env` must not name a port nobody serves
        lock.close()


def _log_interpreters(settings: Settings) -> None:
    """Which interpreter each image family runs with and what it imports, logged by a
    background thread: the interpreters start while the server already answers."""
    import sys

    from sageport.runtime.interpreters import SubprocessProbe, log_in_background

    logger = logging.getLogger("sageport.interpreters")
    log_in_background(settings.images, sys.executable, SubprocessProbe(), logger)


def _exit_on_signal(signum: int, frame: object) -> None:
    """uvicorn has already shut down cleanly: a requested stop exits 0 (as systemd expects)."""
    raise SystemExit(0)


def _load_settings(command: str, data_dir: Path | None) -> Settings:
    """The data folder's settings with its ``sageport.toml`` on top; a file that does not
    parse, an unknown key or a bad value is one line on stderr and exit status 2."""
    base = _settings(data_dir)
    try:
        return base.with_file()
    except (ValueError, TypeError) as exc:  # TOML that does not parse, unknown settings
        where = "" if str(base.settings_file) in str(exc) else f"{base.settings_file}: "
        _fail(f"sageport {command}: {where}{exc}")


def _fail(message: str) -> NoReturn:
    """One line on stderr, exit status 2: a setting the server cannot start with."""
    typer.echo(" ".join(message.split()), err=True)
    raise typer.Exit(2)


def _fast_server() -> tuple[str, str]:
    """uvicorn's (http, loop): httptools and uvloop when installed, else uvicorn's choice.

    They are dependencies, but wheels may be missing on odd platforms. uvicorn's "auto" picks
    the same, silently: named here so the choice is visible. With h11, uvicorn's pure-Python
    parser, large S3 uploads are much slower (docs/performance.md, "Control plane and S3").
    """
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") is not None else "auto"
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "auto"
    return http, loop


@app.command()
def env(data_dir: DataDir = None) -> None:
    """Print export lines that point boto3 and the SageMaker SDK at the server: eval "$(sageport env)"."""
    from sageport.cli.serverinfo import env_lines

    # the data folder's sageport.toml may name another region or account than the defaults
    for line in env_lines(_load_settings("env", data_dir)):
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
    gpu_model: Annotated[
        str | None, typer.Option("--gpu-model", help="GPU model, e.g. A10G.")
    ] = None,
    min_gpu_memory: Annotated[
        float | None, typer.Option("--min-gpu-memory", help="GB per GPU.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List ml.* instance types that fit, cheapest first, and name the cheapest."""
    from sageport.cli.instances import instances_command

    raise typer.Exit(instances_command(gpus, gpu_model, min_gpu_memory, as_json, names or ()))


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    require_gpu: Annotated[
        bool, typer.Option("--require-gpu", help="Exit 1 when no usable GPU is found.")
    ] = False,
    python: Annotated[
        str | None, typer.Option(help="Interpreter jobs use (default: this one).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds the framework probe may take.")] = 180.0,
    data_dir: DataDir = None,
) -> None:
    """Check the GPU stack: driver/NVML, GPUs, CUDA_VISIBLE_DEVICES, PyTorch, TensorFlow, JAX;
    and which interpreter each image family runs with, and what it can import.

    Reads the data folder's sageport.toml as `serve` does: its fake_gpus wins over
    SAGEPORT_FAKE_GPUS, its [images] table maps image families to interpreters.
    """
    from sageport.cli.doctor import doctor_command

    settings = _load_settings("doctor", data_dir)
    code = doctor_command(
        as_json, require_gpu, python, timeout, settings.fake_gpus, images=settings.images
    )
    raise typer.Exit(code)


# -- jobs and logs: clients of the running server's HTTP API (sageport.cli.jobs) -------------


class JobKind(enum.StrEnum):
    training = "training"
    processing = "processing"


jobs_app = typer.Typer(
    no_args_is_help=True, help="Training and processing jobs on the running server."
)
app.add_typer(jobs_app, name="jobs")
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Kind = Annotated[
    JobKind | None,
    typer.Option(
        "--kind",
        help="training or processing (a name may be both; default: whichever it is).",
    ),
]


@jobs_app.command("list")
def jobs_list(
    data_dir: DataDir = None,
    name_contains: Annotated[
        str | None, typer.Option("--name-contains", help="Part of the name.")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="InProgress, Completed, Failed, Stopping or Stopped.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many jobs.")] = 50,
    kind: Annotated[
        JobKind | None, typer.Option("--kind", help="Only training or only processing jobs.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List training and processing jobs, newest first (KIND says which each is)."""
    from sageport.cli.jobs import list_jobs

    raise typer.Exit(
        list_jobs(_settings(data_dir), as_json, name_contains, status, limit, _kind(kind))
    )


@jobs_app.command("describe")
def jobs_describe(
    name: str, data_dir: DataDir = None, kind: Kind = None, as_json: AsJson = False
) -> None:
    """Show one training or processing job: status, steps, inputs, artifacts, failure reason."""
    from sageport.cli.jobs import describe_job

    raise typer.Exit(describe_job(_settings(data_dir), name, as_json, _kind(kind)))


@jobs_app.command("stop")
def jobs_stop(
    name: str, data_dir: DataDir = None, kind: Kind = None, as_json: AsJson = False
) -> None:
    """Stop a training or processing job (SIGTERM, then SIGKILL after the grace period); a
    training job's model is kept."""
    from sageport.cli.jobs import stop_job

    raise typer.Exit(stop_job(_settings(data_dir), name, as_json, _kind(kind)))


def _kind(kind: JobKind | None) -> str | None:
    return kind.value if kind else None


@app.command()
def logs(
    name: str,
    data_dir: DataDir = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
    kind: Annotated[
        JobKind | None,
        typer.Option(
            "--kind",
            "--type",
            help="training or processing (default: whichever the name is; training first).",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="JSON Lines: one object per line (timestamp, host, stream, message).",
        ),
    ] = False,
) -> None:
    """Print a training or processing job's logs (what CloudWatch Logs holds for it)."""
    from sageport.cli.job_logs import show_logs

    raise typer.Exit(
        show_logs(_settings(data_dir), name, follow, job_type=_kind(kind), as_json=as_json)
    )


# -- end jobs and logs

# -- endpoints: clients of the running server's HTTP API (sageport.cli.endpoints) ------------

endpoints_app = typer.Typer(no_args_is_help=True, help="Inference endpoints on the running server.")
app.add_typer(endpoints_app, name="endpoints")


@endpoints_app.command("list")
def endpoints_list(
    data_dir: DataDir = None,
    name_contains: Annotated[
        str | None, typer.Option("--name-contains", help="Part of the name.")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="Creating, InService, Updating, Failed, ...")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List endpoints, newest first."""
    from sageport.cli.endpoints import list_endpoints

    raise typer.Exit(list_endpoints(_settings(data_dir), as_json, name_contains, status))


@endpoints_app.command("describe")
def endpoints_describe(name: str, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Show one endpoint: variants, instances and their GPUs, batch sizes, failures."""
    from sageport.cli.endpoints import describe_endpoint

    raise typer.Exit(describe_endpoint(_settings(data_dir), name, as_json))


@endpoints_app.command("invoke")
def endpoints_invoke(
    name: str,
    body: Annotated[str | None, typer.Option("--body", help="Request body (text).")] = None,
    body_file: Annotated[
        Path | None, typer.Option("--file", help="Read the body from this file.")
    ] = None,
    content_type: Annotated[str, typer.Option("--content-type")] = "application/json",
    accept: Annotated[str | None, typer.Option("--accept")] = None,
    target_variant: Annotated[str | None, typer.Option("--target-variant")] = None,
    custom_attributes: Annotated[str | None, typer.Option("--custom-attributes")] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """InvokeEndpoint: send a body (--body, --file, or stdin) and print the model's answer."""
    from sageport.cli.endpoints import invoke_endpoint

    raise typer.Exit(
        invoke_endpoint(
            _settings(data_dir),
            name,
            body,
            body_file,
            content_type,
            accept,
            target_variant,
            custom_attributes,
            as_json,
        )
    )


@endpoints_app.command("logs")
def endpoints_logs(
    name: str,
    data_dir: DataDir = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until interrupted.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Print an endpoint's model-server logs (/aws/sagemaker/Endpoints/NAME)."""
    from sageport.cli.endpoints import show_logs

    raise typer.Exit(show_logs(_settings(data_dir), name, follow, as_json))


# -- end endpoints


@app.command()
def version() -> None:
    """Print the version (as --version does)."""
    _print_version(True)


def main() -> None:
    app()
