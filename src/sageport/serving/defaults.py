"""Default handlers: what runs where the user module defines no ``model_fn``/``input_fn``/....

Three flavours, picked by ``SAGEPORT_FRAMEWORK`` or else by the model:

- **pytorch** (a ``torch.nn.Module``, or ``model.pt``/``model.pth`` in the model folder): the
  SageMaker PyTorch container's defaults. ``model_fn`` loads the TorchScript archive with
  ``torch.jit.load`` onto ``cuda`` when a GPU is visible (the instance's, via
  CUDA_VISIBLE_DEVICES) else ``cpu``; ``input_fn`` decodes with the toolkit codecs into a
  float tensor on that device; ``predict_fn`` runs the model under ``torch.inference_mode()``;
  ``output_fn`` encodes for Accept. ``batch_predict_fn`` runs a batch of requests as one
  forward pass (concatenated along dim 0, split back). Differences from the container, on
  purpose: float64 npy input is cast to float32 (the container would fail on a float model),
  and the answer's content type is the negotiated type, not the raw Accept header.
  ``model.pth`` is only loaded if it is TorchScript: a state_dict needs a user ``model_fn``.
- **tensorflow** (a SavedModel, ``<version>/saved_model.pb`` or ``*.keras``/``*.h5``; only when
  TensorFlow is installed): TensorFlow Serving's REST forms — ``{"instances": [...]}`` or
  ``{"inputs": ...}`` (or a bare list) in, ``{"predictions": [...]}`` out for JSON.
- **plain**: the base toolkit's numpy codecs; ``predict_fn`` calls ``model.predict(data)`` or
  ``model(data)`` where the base toolkit would raise NotImplementedError.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sageport.serving import codecs
from sageport.serving.errors import BadRequestBody

BatchPredict = Callable[[list[Any], Any], list[Any]]


class PlainDefaults:
    """The base inference toolkit's defaults (numpy in, numpy out)."""

    name = "plain"
    batch_predict_fn: BatchPredict | None = None

    def __init__(self, default_accept: str) -> None:
        self.default_accept = default_accept

    def input_fn(self, data: str | bytes, content_type: str | None) -> Any:
        return codecs.decode(data, content_type)

    def predict_fn(self, data: Any, model: Any) -> Any:
        if hasattr(model, "predict"):
            return model.predict(data)
        if callable(model):
            return model(data)
        raise NotImplementedError(
            "Please provide a predict_fn implementation (the model is not callable)."
        )

    def output_fn(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        return codecs.encode_for_accept(prediction, accept, self.default_accept)


class PyTorchDefaults(PlainDefaults):
    """The SageMaker PyTorch container's defaults, with a batched forward."""

    name = "pytorch"

    def __init__(self, default_accept: str, device: Any) -> None:
        super().__init__(default_accept)
        import torch

        self.torch = torch
        self.device = device
        self.batch_predict_fn = self.batch_predict

    def input_fn(self, data: str | bytes, content_type: str | None) -> Any:
        array = codecs.decode(data, content_type)
        torch = self.torch
        try:
            if content_type in codecs.UTF8_TYPES:
                tensor = torch.as_tensor(array, dtype=torch.float32)
            else:
                tensor = torch.from_numpy(array)
                if tensor.dtype == torch.float64:
                    tensor = tensor.float()
        except (TypeError, ValueError, RuntimeError) as exc:
            message = f"Could not convert the {content_type} body to a tensor: {exc}"
            raise BadRequestBody(message) from exc
        return tensor.to(self.device) if self.device.type != "cpu" else tensor

    def predict_fn(self, data: Any, model: Any) -> Any:
        with self.torch.inference_mode():
            return model(data)

    def batch_predict(self, inputs: list[Any], model: Any) -> list[Any]:
        """One forward per group of same-shaped inputs; per-item results in input order."""
        torch = self.torch
        results: list[Any] = [None] * len(inputs)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, item in enumerate(inputs):
            if isinstance(item, torch.Tensor) and item.dim() >= 1:
                key = (item.dim(), tuple(item.shape[1:]), item.dtype, item.device)
                groups.setdefault(key, []).append(index)
            else:
                results[index] = self.predict_fn(item, model)
        with torch.inference_mode():
            for (ndim, _, _, _), indexes in groups.items():
                items = [inputs[i] for i in indexes]
                if len(items) == 1:
                    results[indexes[0]] = model(items[0])
                    continue
                if ndim == 1:
                    outputs = model(torch.stack(items))
                    parts: Sequence[Any] = outputs.unbind(0)
                else:
                    outputs = model(torch.cat(items))
                    parts = outputs.split([int(item.shape[0]) for item in items])
                for index, part in zip(indexes, parts, strict=True):
                    results[index] = part
        return results

    def output_fn(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        kind = codecs.negotiate(accept, self.default_accept)
        return codecs.encode(self._to_numpy(prediction), kind), kind

    def _to_numpy(self, value: Any) -> Any:
        if isinstance(value, self.torch.Tensor):
            return value.detach().cpu().numpy()
        if isinstance(value, list | tuple):
            return [self._to_numpy(item) for item in value]
        if isinstance(value, dict):
            return {key: self._to_numpy(item) for key, item in value.items()}
        return value


class TensorFlowDefaults(PlainDefaults):
    """TensorFlow Serving's REST request and response forms over a SavedModel or Keras model."""

    name = "tensorflow"

    def input_fn(self, data: str | bytes, content_type: str | None) -> Any:
        import numpy as np

        if content_type != codecs.JSON:
            return codecs.decode(data, content_type)
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise BadRequestBody(f"Could not decode the request body as JSON: {exc}") from exc
        if isinstance(parsed, dict):
            for key in ("instances", "inputs"):
                if key in parsed:
                    return np.asarray(parsed[key])
            raise BadRequestBody('JSON body must be a list or have "instances" or "inputs"')
        return np.asarray(parsed)

    def predict_fn(self, data: Any, model: Any) -> Any:
        tf = _tensorflow()

        signatures = getattr(model, "signatures", None)
        if signatures is not None and "serving_default" in signatures:
            fn = signatures["serving_default"]
            name, spec = next(iter(fn.structured_input_signature[1].items()))
            outputs = fn(**{name: tf.constant(data, dtype=spec.dtype)})
            if len(outputs) == 1:
                return next(iter(outputs.values())).numpy()
            return {key: value.numpy() for key, value in outputs.items()}
        return model(data, training=False).numpy()

    def output_fn(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        kind = codecs.negotiate(accept, self.default_accept)
        if kind != codecs.JSON:
            return codecs.encode(prediction, kind), kind
        if isinstance(prediction, dict):
            keys = list(prediction)
            rows = len(prediction[keys[0]])
            body: Any = [{key: prediction[key][row] for key in keys} for row in range(rows)]
        else:
            body = prediction
        return codecs.encode({"predictions": body}, codecs.JSON), kind


Defaults = PlainDefaults


def detect_framework(model_dir: Path) -> str | None:
    """``pytorch`` for ``*.pt``/``*.pth``, ``tensorflow`` for a SavedModel/Keras file, else None."""
    if any(model_dir.glob("*.pt")) or any(model_dir.glob("*.pth")):
        return "pytorch"
    if (
        _saved_model_dirs(model_dir)
        or any(model_dir.glob("*.keras"))
        or any(model_dir.glob("*.h5"))
    ):
        return "tensorflow"
    return None


def load_default_model(model_dir: Path, framework: str | None) -> Any:
    """The default ``model_fn`` for ``framework`` (detected from the folder when None)."""
    framework = framework or detect_framework(model_dir)
    if framework == "pytorch":
        return _load_torchscript(model_dir)
    if framework == "tensorflow":
        return _load_tensorflow(model_dir)
    raise FileNotFoundError(
        f"No model_fn in the user module and no model file sageport can load in {model_dir}: "
        "expected model.pt (TorchScript), a TensorFlow SavedModel, or code/inference.py "
        "defining model_fn."
    )


def defaults_for(model: Any, framework: str | None, default_accept: str) -> PlainDefaults:
    """The default handler set that fits ``model``."""
    torch = sys.modules.get("torch")
    if framework == "pytorch" or (
        framework is None and torch is not None and isinstance(model, torch.nn.Module)
    ):
        return PyTorchDefaults(default_accept, torch_device())
    if framework == "tensorflow" or (
        framework is None and "tensorflow" in sys.modules and hasattr(model, "signatures")
    ):
        return TensorFlowDefaults(default_accept)
    return PlainDefaults(default_accept)


def torch_device() -> Any:
    """``cuda`` (the instance's first visible GPU) when available, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gpu_id() -> int | None:
    """``context.system_properties["gpu_id"]``: 0 when torch sees a GPU, else None."""
    torch = sys.modules.get("torch")
    return 0 if torch is not None and torch.cuda.is_available() else None


def _load_torchscript(model_dir: Path) -> Any:
    import torch

    path = _torch_model_file(model_dir)
    try:
        load: Any = torch.jit.load  # untyped in torch's stubs
        model = load(str(path), map_location=torch_device())
    except RuntimeError as exc:
        raise ValueError(
            f"{path.name} is not a TorchScript archive (torch.jit.save / torch.jit.script): "
            f"{exc}. A state_dict or a pickled module needs a model_fn in code/inference.py "
            "that builds the network and loads the weights."
        ) from exc
    model.eval()
    return model


def _torch_model_file(model_dir: Path) -> Path:
    for name in ("model.pt", "model.pth"):
        if (model_dir / name).is_file():
            return model_dir / name
    found = sorted([*model_dir.glob("*.pt"), *model_dir.glob("*.pth")])
    if len(found) == 1:
        return found[0]
    names = ", ".join(path.name for path in found) or "none"
    raise FileNotFoundError(
        f"Expected model.pt or exactly one *.pt/*.pth file in {model_dir} (found: {names})"
    )


def _saved_model_dirs(model_dir: Path) -> list[Path]:
    found = [
        path.parent
        for depth in ("", "*/", "*/*/")
        for path in model_dir.glob(f"{depth}saved_model.pb")
    ]
    return sorted(found, key=_version_key)


def _version_key(path: Path) -> tuple[int, str]:
    return (int(path.name) if path.name.isdigit() else -1, str(path))


def _load_tensorflow(model_dir: Path) -> Any:
    try:
        tf = _tensorflow()
    except ImportError as exc:
        raise ImportError(
            f"{model_dir} holds a TensorFlow model but TensorFlow is not installed"
        ) from exc
    saved = _saved_model_dirs(model_dir)
    if saved:
        return tf.saved_model.load(str(saved[-1]))
    keras_files = sorted([*model_dir.glob("*.keras"), *model_dir.glob("*.h5")])
    return tf.keras.models.load_model(str(keras_files[0]))


def _tensorflow() -> Any:
    """TensorFlow, imported only when a TensorFlow model is served (it takes seconds)."""
    return importlib.import_module("tensorflow")
