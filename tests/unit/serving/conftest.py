"""Fixtures for the model-server tests: an MLP model folder, servers stopped at the end."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from serving_helpers import ModelServer


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder holding a TorchScript 784-256-10 MLP as ``model.pt``."""
    torch = pytest.importorskip("torch")
    model_dir = tmp_path_factory.mktemp("mlp")
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    with warnings.catch_warnings():  # TorchScript is deprecated, but it is SageMaker's format
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(mlp).save(str(model_dir / "model.pt"))
    return model_dir


@pytest.fixture
def start_server() -> Iterator[type[ModelServer]]:
    """Start servers with ``start_server(model_dir, env)``; all are stopped at the end."""
    started: list[ModelServer] = []

    class Tracked(ModelServer):
        def __init__(self, model_dir: Path, env: Mapping[str, str] | None = None) -> None:
            super().__init__(model_dir, env)
            started.append(self)

    yield Tracked
    for server in started:
        server.stop()
