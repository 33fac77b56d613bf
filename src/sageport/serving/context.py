"""The ``context`` argument user handlers may take, and the request/response of one call.

A subset of the MMS/TorchServe ``Context`` the inference toolkit passes: the attributes user
code actually reads (``system_properties["model_dir"|"gpu_id"]``, ``request_processor[0].
get_request_properties()``, ``get_request_header``) and the setters it calls
(``set_response_content_type``, ``set_response_header``, ``set_response_status``). Index
arguments exist for signature compatibility; one context is one request. ``custom_attributes``
and ``inference_id`` are the request's ``X-Amzn-SageMaker-Custom-Attributes`` and
``X-Amzn-SageMaker-Inference-Id`` (sageport additions; every InvokeEndpoint header the runtime
forwards is also readable with ``get_request_header``). A handler answers custom attributes
with ``context.set_response_header(0, "X-Amzn-SageMaker-Custom-Attributes", "...")``; the
client reads them as the response's ``CustomAttributes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
INFERENCE_ID = "x-amzn-sagemaker-inference-id"


@dataclass(frozen=True)
class InferenceRequest:
    """One ``/invocations`` call as the handler layer sees it; header names are lower-case."""

    body: bytes
    content_type: str | None = None
    accept: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class InferenceResponse:
    """What the server writes back: status 200 unless the handler set one."""

    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


class RequestProcessor:
    """``context.request_processor[0]``: the request headers, as MMS exposes them."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def get_request_properties(self) -> dict[str, str]:
        return self._headers

    def get_request_property(self, key: str) -> str | None:
        return self._headers.get(key.lower())


class Context:
    """Per-call context: system properties in, response content type/headers/status out."""

    def __init__(
        self, model_dir: str, gpu_id: int | None, headers: Mapping[str, str] | None = None
    ) -> None:
        self.model_name = "model"
        self.system_properties: dict[str, Any] = {"model_dir": model_dir, "gpu_id": gpu_id}
        self.request_processor = [RequestProcessor(headers or {})]
        self.custom_attributes: str | None = (headers or {}).get(CUSTOM_ATTRIBUTES)
        self.inference_id: str | None = (headers or {}).get(INFERENCE_ID)
        self.response_content_type: str | None = None
        self.response_headers: dict[str, str] = {}
        self.response_status: int | None = None
        self.metrics: dict[str, float] = {}

    def get_request_header(self, idx: int, key: str) -> str | None:
        return self.request_processor[0].get_request_property(key)

    def get_all_request_header(self, idx: int) -> dict[str, str]:
        return self.request_processor[0].get_request_properties()

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.response_content_type = value

    def get_response_content_type(self, idx: int) -> str | None:
        return self.response_content_type

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.response_headers[key] = value

    def get_response_headers(self, idx: int) -> dict[str, str]:
        return self.response_headers

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.response_status = code
