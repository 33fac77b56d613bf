"""How the user code is started, as the training toolkit starts it (sagemaker-training 5.1.4).

The toolkit's rules (``_entry_point_type.get``, ``process.ProcessRunner._create_command``,
``modules.install``/``install_requirements``, ``entry_point.install``):

- ``*.sh`` → a command: ``/bin/sh -c "./<quoted name> <quoted args>"``, made executable first;
- a ``setup.py`` in the code folder → a Python package: ``pip install . [-r requirements.txt]``
  then ``python -m <name without .py> args``;
- ``*.py`` → a Python program: ``pip install -r requirements.txt`` if present, then
  ``python -- <name> args`` (5.1.4 puts ``--`` before the script);
- anything else → a command, as for ``*.sh``.

``AlgorithmSpecification.ContainerEntrypoint`` (and ``ContainerArguments``) replaces all of it:
the platform runs exactly that. The entry point name is checked with the toolkit's own rule,
so a name the real container would refuse is refused here with the same explanation.
"""

from __future__ import annotations

import enum
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sageport.runtime import names
from sageport.runtime.errors import InvalidEntryPoint

_SAFE_ENTRY_POINT = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._+-]*(/[A-Za-z0-9._+-]+)*$")
_SAFE_CHARACTER = re.compile(r"[A-Za-z0-9._+/-]")


class EntryPointType(enum.Enum):
    """``_entry_point_type._EntryPointType``."""

    PYTHON_PACKAGE = "PYTHON_PACKAGE"
    PYTHON_PROGRAM = "PYTHON_PROGRAM"
    COMMAND = "COMMAND"


def validate_entry_point(name: str | None) -> str:
    """``process.validate_entry_point``: a plain relative path inside the code folder."""
    if not name:
        raise InvalidEntryPoint(
            "The training entry point name is empty. Set the 'sagemaker_program' "
            "hyperparameter (or ContainerEntrypoint) to the name of the script to run, "
            "relative to your source directory -- for example 'train.py' or 'train.sh'."
        )
    if not _SAFE_ENTRY_POINT.match(name):
        unsupported = sorted({c for c in name if not _SAFE_CHARACTER.match(c)})
        if unsupported:
            detail = "the character(s) " + ", ".join(repr(c) for c in unsupported)
        elif name.startswith("-"):
            detail = "a leading '-', which is read as a command-line option"
        elif name.startswith("/"):
            detail = "a leading '/', which makes it an absolute path"
        else:
            detail = "an unsupported character at the start of the name"
        raise InvalidEntryPoint(
            f"The training entry point {name!r} cannot be used because it contains {detail}. "
            "Rename the script so its name contains only letters, digits, '.', '_', "
            "'+', '-' and '/', and does not start with '-' or '/', then set the "
            "'sagemaker_program' hyperparameter (or ContainerEntrypoint) to the new name "
            "-- for example 'train.py' or 'bin/train.sh'."
        )
    if any(segment in (".", "..") for segment in name.split("/")):
        raise InvalidEntryPoint(
            f"The training entry point {name!r} cannot be used because it contains '.' or '..' "
            "path segments. The entry point must be a path inside your source directory. "
            "Set the 'sagemaker_program' hyperparameter (or ContainerEntrypoint) to a "
            "path relative to that directory -- for example 'train.py' or 'bin/train.sh'."
        )
    return name


def entry_point_type(code_dir: Path, name: str) -> EntryPointType:
    """``_entry_point_type.get`` (lists ``code_dir``)."""
    if name.endswith(".sh"):
        return EntryPointType.COMMAND
    if (code_dir / names.SETUP_FILE).exists():
        return EntryPointType.PYTHON_PACKAGE
    if name.endswith(".py"):
        return EntryPointType.PYTHON_PROGRAM
    return EntryPointType.COMMAND


@dataclass(frozen=True)
class LaunchPlan:
    """What to run, in order, in ``cwd``: every ``install`` command (each must exit 0,
    else the job fails as the toolkit's InstallModuleError/InstallRequirementsError), after
    making ``make_executable`` executable if set, then ``argv``."""

    argv: tuple[str, ...]
    cwd: Path
    install: tuple[tuple[str, ...], ...] = ()
    make_executable: Path | None = None


def program_from_hyperparameters(decoded: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The entry point the toolkit runs: ``SAGEMAKER_PROGRAM`` or ``sagemaker_program``."""
    program = env.get(names.USER_PROGRAM_ENV) or decoded.get(names.USER_PROGRAM_PARAM)
    return None if program is None else str(program)


def plan_launch(
    *,
    code_dir: Path,
    program: str | None,
    cmd_args: Sequence[str],
    python: str,
    container_entrypoint: Sequence[str] | None = None,
    container_arguments: Sequence[str] | None = None,
    listing_dir: Path | None = None,
) -> LaunchPlan:
    """The commands that start the user code of a job (reads ``code_dir``'s listing).

    ``code_dir`` is the code folder as the process sees it (``/opt/ml/code`` in a sandbox);
    ``listing_dir``, when given, is the same folder as this process sees it, where
    ``requirements.txt`` and ``setup.py`` are looked for.

    ``program`` is the entry point (see ``program_from_hyperparameters``); ``cmd_args`` the
    user hyperparameters as ``hyperparameters.to_cmd_args`` formats them; ``python`` the
    interpreter of the job's ``RuntimeSpec``, used for pip as well so packages land in it.
    Arguments without an entry point are run as the command, as Docker runs a CMD.
    """
    if container_entrypoint or container_arguments:
        argv = (*(container_entrypoint or ()), *(container_arguments or ()))
        return LaunchPlan(argv=argv, cwd=code_dir)

    name = validate_entry_point(program)
    real = listing_dir or code_dir
    has_requirements = (real / names.REQUIREMENTS_FILE).exists()
    pip = (python, "-m", "pip", "install")
    kind = entry_point_type(real, name)
    if kind is EntryPointType.PYTHON_PACKAGE:
        install = (*pip, ".", *(("-r", names.REQUIREMENTS_FILE) if has_requirements else ()))
        module = re.sub(r"\.py$", "", name)
        return LaunchPlan(argv=(python, "-m", module, *cmd_args), cwd=code_dir, install=(install,))
    if kind is EntryPointType.PYTHON_PROGRAM:
        installs = ((*pip, "-r", names.REQUIREMENTS_FILE),) if has_requirements else ()
        return LaunchPlan(argv=(python, "--", name, *cmd_args), cwd=code_dir, install=installs)
    command = "./{} {}".format(shlex.quote(name), " ".join(shlex.quote(a) for a in cmd_args))
    return LaunchPlan(
        argv=("/bin/sh", "-c", command), cwd=code_dir, make_executable=code_dir / name
    )
