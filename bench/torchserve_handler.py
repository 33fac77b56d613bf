"""TorchServe handler for ``bench/serving.py``: what sageport's default PyTorch handler does.

decode (by Content-Type) → float32 tensor → TorchScript forward under ``inference_mode`` →
numpy → encode (by Accept), with sageport's own codecs (``sageport.serving.codecs``: orjson
for JSON, a fast NPY reader), so TorchServe and sageport run exactly the same per-request
Python work and the comparison measures the serving stacks, not the codecs. TorchServe is run
with ``decode_input_request=false`` (as SageMaker's PyTorch container runs it), so bodies
arrive here as bytes. A batch (TorchServe batching on) is concatenated along dim 0, run as one
forward pass and split back, as sageport's batched forward does.

``decode``/``encode``/``forward`` are also what ``serving.py``'s in-process case calls.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from sageport.serving import codecs

DEFAULT_ACCEPT = "application/json"


def decode(body: bytes, content_type: str) -> torch.Tensor:
    array = codecs.decode(codecs.request_body(body, content_type), content_type)
    if content_type in codecs.UTF8_TYPES:
        return torch.as_tensor(array, dtype=torch.float32)
    tensor = torch.from_numpy(array)
    return tensor.float() if tensor.dtype == torch.float64 else tensor


def encode(output: torch.Tensor, accept: str) -> tuple[bytes, str]:
    kind = codecs.negotiate(accept, DEFAULT_ACCEPT)
    return codecs.encode(output.detach().cpu().numpy(), kind), kind


def forward(model: Any, inputs: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """One forward pass for the whole list (concatenated along dim 0), split back per input."""
    with torch.inference_mode():
        if len(inputs) == 1:
            return [model(inputs[0].to(device))]
        outputs = model(torch.cat(inputs).to(device))
        return list(outputs.split([int(item.shape[0]) for item in inputs]))


def _header(context: Any, idx: int, name: str) -> str | None:
    for key in (name, name.lower(), name.title()):
        value = context.get_request_header(idx, key)
        if isinstance(value, str):
            return value
    return None


class MLPHandler:
    """TorchServe's class entry point: ``initialize(context)`` once, ``handle(data, context)``."""

    def __init__(self) -> None:
        self.model: Any = None
        self.device = torch.device("cpu")

    def initialize(self, context: Any) -> None:
        props = context.system_properties
        gpu = props.get("gpu_id")
        if torch.cuda.is_available() and gpu is not None:
            self.device = torch.device(f"cuda:{gpu}")
        threads = os.environ.get("BENCH_TORCH_THREADS")
        if threads:
            torch.set_num_threads(int(threads))
        model_dir = props.get("model_dir")
        self.model = torch.jit.load(os.path.join(model_dir, "model.pt"), map_location=self.device)
        self.model.eval()

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[bytes]:
        inputs = []
        for idx, item in enumerate(data):
            body = item.get("body")
            if body is None:
                body = item.get("data") or b""
            content_type = codecs.media_type(_header(context, idx, "Content-Type")) or codecs.JSON
            inputs.append(decode(bytes(body), content_type))
        answers = []
        for idx, output in enumerate(forward(self.model, inputs, self.device)):
            encoded, kind = encode(output, _header(context, idx, "Accept") or DEFAULT_ACCEPT)
            context.set_response_content_type(idx, kind)
            answers.append(encoded)
        return answers
