"""Hyperparameters as the training toolkit reads them and hands them to the user script.

The request carries a ``{str: str}`` map. SDK v2 JSON-encodes every value (``"\\"abc\\""``,
``"true"``, ``"{\\"a\\": 1}"``); SDK v3 and boto3 users send raw strings. The toolkit decodes
each value with ``json.loads`` and keeps the raw string when that fails, so both styles work;
we do exactly the same (``environment.read_hyperparameters``), then split the platform's names
off (``mapping.split_by_criteria``) and format the rest as command-line arguments
(``mapping.to_cmd_args``). Matching the toolkit byte for byte matters: scripts parse these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sageport.runtime import names


def decode(raw: Mapping[str, str]) -> dict[str, Any]:
    """Each value ``json.loads``-ed, or kept as the raw string if it is not JSON."""
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (ValueError, TypeError):
            decoded[key] = value
    return decoded


@dataclass(frozen=True)
class SplitHyperparameters:
    """Decoded hyperparameters, split the way the toolkit splits them.

    ``user`` goes to the script (``SM_HPS``, ``SM_HP_*``, the command line); ``sagemaker``
    holds every platform name (reserved ones and ``sagemaker_*``); ``framework`` is the part
    of ``sagemaker`` that is not reserved (``SM_FRAMEWORK_PARAMS``: distribution flags, ...).
    """

    user: dict[str, Any]
    sagemaker: dict[str, Any]
    framework: dict[str, Any]


def split(decoded: Mapping[str, Any]) -> SplitHyperparameters:
    """Split decoded hyperparameters into user, platform and framework parts."""
    reserved = set(names.SAGEMAKER_HYPERPARAMETERS)
    sagemaker = {
        key: value
        for key, value in decoded.items()
        if key in reserved or key.startswith(names.SAGEMAKER_PREFIX)
    }
    user = {key: value for key, value in decoded.items() if key not in sagemaker}
    framework = {key: value for key, value in sagemaker.items() if key not in reserved}
    return SplitHyperparameters(user=user, sagemaker=sagemaker, framework=framework)


def _text(value: Any) -> str:
    """The toolkit's ``mapping._decode``: None → "", bytes → latin-1 text, else ``str()``."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """``mapping.to_cmd_args``: keys sorted, ``--key value`` (``-k`` for one character).

    Values are ``str()``-ed the Python way, so ``True`` stays ``True`` (argparse users rely on
    it), a dict becomes ``k=v,k2=v2`` sorted by key, a list its Python repr, None "".
    """
    args: list[str] = []
    for key in sorted(hyperparameters):
        name = _text(key)
        if name:
            name = f"--{name}" if len(name) > 1 else f"-{name}"
        value = hyperparameters[key]
        text = (
            ",".join(f"{k}={v}" for k, v in sorted(value.items()))
            if isinstance(value, Mapping)
            else _text(value)
        )
        args.extend((name, text))
    return args
