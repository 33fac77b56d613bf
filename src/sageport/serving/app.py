"""The routes of the model server and the state of its one model.

``GET /ping``: 200 once the model is loaded, 503 while it loads, 500 with the reason when
loading failed (SageMaker only looks at the status). ``POST /invocations``: the handler
contract (``handler``), through the dynamic batcher when batching is on; every failure is an
answer, never a dead server: the status is the error's (``errors``), the body its message,
plus the traceback for errors raised by user code (as the toolkit's ``handle_error``).
``GET /metrics``: JSON (``metrics``). ``GET /execution-parameters``: what batch transform asks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from sageport.serving import overlay
from sageport.serving.batching import Batcher
from sageport.serving.config import ServerConfig, default_torch_threads
from sageport.serving.context import InferenceRequest
from sageport.serving.errors import InferenceError, ModelNotReady
from sageport.serving.handler import Handler, load_user_module
from sageport.serving.http import HttpRequest, HttpResponse
from sageport.serving.metrics import Metrics, merge
from sageport.serving.pool import HandlerPool

LOG = logging.getLogger(__name__)
JSON_TYPE = "application/json"


class ModelServerApp:
    """One model: loading it, answering its routes, counting what happened."""

    def __init__(
        self,
        config: ServerConfig,
        pool: HandlerPool,
        metrics: Metrics,
        *,
        worker_count: int = 1,
        metrics_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.metrics = metrics
        self.worker_count = worker_count
        self.metrics_dir = metrics_dir
        self.handler: Handler | None = None
        self.batcher: Batcher | None = None
        self.load_error: str | None = None

    # -- loading -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the model in a handler thread, so ``/ping`` answers 503 meanwhile."""
        job = self.pool.submit(self._load_sync)
        try:
            handler = await job.future
        except Exception as exc:
            self.load_error = user_traceback(exc)
            LOG.error("model failed to load:\n%s", self.load_error)
            return
        if self.config.batching:
            self.batcher = Batcher(
                handler.invoke_batch,
                self.pool,
                self.metrics,
                max_size=self.config.batch_size,
                max_delay_s=self.config.max_batch_delay_s,
                timeout_s=self.config.timeout_s,
            )
        self.handler = handler
        LOG.info(
            "model loaded from %s (defaults: %s, batching: %s)",
            self.config.model_dir,
            handler.defaults.name if handler.defaults else "-",
            f"{self.config.batch_size}/{self.config.max_batch_delay_s * 1000:g}ms"
            if self.config.batching
            else "off",
        )

    def _load_sync(self) -> Handler:
        config = self.config
        site = overlay.ensure_overlay(config.code_dir, config.overlay_root)
        if site is not None:
            overlay.activate(site)
        module = load_user_module(config.code_dir, config.program)
        handler = Handler(
            module,
            config.model_dir,
            default_accept=config.default_accept,
            framework=config.framework,
        )
        handler.load()
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(config.torch_threads or default_torch_threads(self.worker_count))
        return handler

    # -- routes ------------------------------------------------------------------------------

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path.split("?", 1)[0]
        if path == "/invocations":
            if request.method != "POST":
                return _text(405, "Use POST /invocations")
            return await self.invocations(request)
        if path == "/ping":
            return self.ping()
        if path == "/metrics":
            return HttpResponse(200, json.dumps(self.metrics_document()).encode(), JSON_TYPE)
        if path == "/execution-parameters":
            body = {
                "MaxConcurrentTransforms": self.pool.threads * self.worker_count,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": self.config.max_payload_bytes // (1024 * 1024),
            }
            return HttpResponse(200, json.dumps(body).encode(), JSON_TYPE)
        return _text(404, f"No route for {request.method} {path}")

    def ping(self) -> HttpResponse:
        if self.handler is not None:
            return HttpResponse(200, b"", JSON_TYPE)
        if self.load_error is not None:
            return _text(500, f"Model failed to load:\n{self.load_error}")
        return _text(503, "Model is loading")

    async def invocations(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        try:
            response = await self._invoke(request)
        except Exception as exc:
            response = error_response(exc)
        self.metrics.observe_invocation(response.status, time.perf_counter() - started)
        return response

    async def _invoke(self, request: HttpRequest) -> HttpResponse:
        handler = self.handler
        if handler is None:
            if self.load_error is not None:
                raise ModelNotReady(f"Model failed to load:\n{self.load_error}")
            raise ModelNotReady("Model is still loading")
        headers = request.headers
        inference = InferenceRequest(
            body=request.body,
            content_type=headers.get("content-type"),
            accept=headers.get("accept"),
            headers=headers,
        )
        if self.batcher is not None:
            result = await self.batcher.submit(inference)
        else:
            job = self.pool.submit(handler.invoke, inference, timeout=self.config.timeout_s)
            result = await job.future
        return HttpResponse(result.status, result.body, result.content_type, result.headers)

    def metrics_document(self) -> dict[str, Any]:
        """This worker's metrics merged with the other workers' last published snapshots."""
        own = self.metrics.snapshot()
        snapshots = [own]
        if self.metrics_dir is not None:
            for path in sorted(self.metrics_dir.glob("*.json")):
                if path.stem == str(own["pid"]):
                    continue
                try:
                    snapshots.append(json.loads(path.read_text()))
                except (OSError, ValueError):
                    continue
        document = merge(snapshots)
        config = self.config
        document["batching"] = (
            {"batch_size": config.batch_size, "max_delay_ms": config.max_batch_delay_s * 1000}
            if config.batching
            else None
        )
        document["ready"] = self.handler is not None
        return document

    async def publish_metrics(self, interval_s: float = 1.0) -> None:
        """With several workers: write this worker's snapshot where the others read it."""
        if self.metrics_dir is None:
            return
        while True:
            snapshot = self.metrics.snapshot()
            path = self.metrics_dir / f"{snapshot['pid']}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(snapshot))
            tmp.replace(path)
            await asyncio.sleep(interval_s)


def user_traceback(exc: BaseException) -> str:
    """The traceback without the model server's own frames: what a person acts on is in the
    user's code (``model_fn``, an import in ``inference.py``) and the exception line."""
    here = str(Path(__file__).resolve().parent)
    info = traceback.TracebackException.from_exception(exc)
    frames = [f for f in info.stack if not str(Path(f.filename).resolve()).startswith(here)]
    if frames:
        info.stack = traceback.StackSummary.from_list(frames)
    return "".join(info.format())


def error_response(exc: BaseException) -> HttpResponse:
    """The toolkit's error answer: status from the exception, message (+ traceback) as body."""
    if isinstance(exc, InferenceError):
        return _text(exc.status_code, exc.message)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 500
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    trace = "".join(traceback.format_exception(exc))
    LOG.error("invocation failed (%s):\n%s", status, trace)
    return _text(status, f"{message}\n{trace}")


def _text(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, message.encode("utf-8"), "text/plain; charset=utf-8")
