"""The user module and the handler contract of the SageMaker inference toolkit.

``load_user_module`` imports ``<code dir>/<SAGEMAKER_PROGRAM>`` (the code folder on
``sys.path``, as the toolkit prepends it to PYTHONPATH). ``Handler`` resolves the functions:

- ``model_fn(model_dir)``, ``input_fn(input_data, content_type)``, ``predict_fn(data, model)``,
  ``output_fn(prediction, accept)``, each falling back to ``defaults``;
- ``transform_fn(model, input_data, content_type, accept)`` replaces the other three (defining
  both is the toolkit's ValueError); ``pre_model_fn(model_dir)`` and
  ``model_warmup_fn(model_dir, model)`` run around loading;
- every function may take one extra trailing ``context`` argument: the arity is read with
  ``inspect.signature`` once, as the toolkit's ``_run_handler_function`` does per call.

Input data is ``str`` for JSON and CSV bodies and ``bytes`` otherwise. A result may be
``(body, content_type)``; otherwise the content type is the one the handler set on the context,
else Accept. A body that is not bytes/str is JSON-encoded, or is a 500 if it cannot be.

Batching (see ``batching``): ``invoke_batch`` decodes each request, runs the batch hook once
(``batch_predict_fn(inputs, model[, contexts])`` from the user module, a ``predict_fn`` whose
first parameter is annotated as a list, or the default PyTorch batched forward), then encodes
each result; requests fail one by one. Without a hook, requests run one after another.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from sageport.serving import codecs, defaults
from sageport.serving.context import Context, InferenceRequest, InferenceResponse
from sageport.serving.errors import UnencodableResult

USER_FUNCTIONS = (
    "model_fn",
    "input_fn",
    "predict_fn",
    "output_fn",
    "transform_fn",
    "pre_model_fn",
    "model_warmup_fn",
    "batch_predict_fn",
)


def load_user_module(code_dir: Path | None, program: str) -> ModuleType | None:
    """Import the user module, or None when the code folder has no such file."""
    if code_dir is None:
        return None
    path = code_dir / program if program.endswith(".py") else code_dir / f"{program}.py"
    if not path.is_file():
        return None
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Bound:
    """A handler function with its context-or-not decision made once."""

    def __init__(self, func: Callable[..., Any], nargs: int) -> None:
        self.func = func
        self.name = getattr(func, "__name__", repr(func))
        count = len(inspect.signature(func).parameters)
        if count not in (nargs, nargs + 1):
            raise TypeError(f"{self.name} takes {count} arguments but {nargs} were given.")
        self.takes_context = count == nargs + 1

    def __call__(self, context: Any, *args: Any) -> Any:
        if self.takes_context:
            return self.func(*args, context)
        return self.func(*args)


def takes_list(func: Callable[..., Any]) -> bool:
    """Whether ``predict_fn``'s first parameter is annotated as a list (the batch hook)."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        return False
    params = list(inspect.signature(func).parameters)
    if not params or params[0] not in hints:
        return False
    hint = hints[params[0]]
    return hint is list or typing.get_origin(hint) in (list, Sequence)


class Handler:
    """The resolved handler functions and the loaded model of one model server."""

    def __init__(
        self,
        module: ModuleType | None,
        model_dir: Path,
        *,
        default_accept: str = codecs.JSON,
        framework: str | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.default_accept = default_accept
        self.framework = framework
        user = {name: getattr(module, name, None) for name in USER_FUNCTIONS}
        self.user = {name: fn for name, fn in user.items() if callable(fn)}
        if "transform_fn" in self.user and {"input_fn", "predict_fn", "output_fn"} & set(self.user):
            raise ValueError(
                "Cannot use transform_fn implementation in conjunction with input_fn, "
                "predict_fn, and/or output_fn implementation"
            )
        self.model: Any = None
        self.gpu_id: int | None = None
        self.defaults: defaults.PlainDefaults | None = None
        self._input: Bound | None = None
        self._predict: Bound | None = None
        self._output: Bound | None = None
        self._transform: Bound | None = None
        self._batch: Bound | None = None
        self._output_is_default = "output_fn" not in self.user

    @property
    def batched(self) -> bool:
        """Whether a batch runs as one call (a batch hook exists)."""
        return self._batch is not None

    def load(self) -> None:
        """pre_model_fn, model_fn (or the default), defaults, model_warmup_fn; slow, once."""
        model_dir = str(self.model_dir)
        context = Context(model_dir, None)
        if "pre_model_fn" in self.user:
            Bound(self.user["pre_model_fn"], 1)(context, model_dir)
        if "model_fn" in self.user:
            model = Bound(self.user["model_fn"], 1)(context, model_dir)
        else:
            model = defaults.load_default_model(self.model_dir, self.framework)
        chosen = defaults.defaults_for(model, self.framework, self.default_accept)
        self.gpu_id = defaults.gpu_id()
        self.defaults = chosen
        self._input = Bound(self.user.get("input_fn", chosen.input_fn), 2)
        self._predict = Bound(self.user.get("predict_fn", chosen.predict_fn), 2)
        self._output = Bound(self.user.get("output_fn", chosen.output_fn), 2)
        if "transform_fn" in self.user:
            self._transform = Bound(self.user["transform_fn"], 4)
        elif "batch_predict_fn" in self.user:
            self._batch = Bound(self.user["batch_predict_fn"], 2)
        elif "predict_fn" in self.user:
            if takes_list(self.user["predict_fn"]):
                self._batch = self._predict
        elif chosen.batch_predict_fn is not None:
            self._batch = Bound(chosen.batch_predict_fn, 2)
        if "model_warmup_fn" in self.user:
            Bound(self.user["model_warmup_fn"], 2)(context, model_dir, model)
        self.model = model

    def context(self, request: InferenceRequest) -> Context:
        return Context(str(self.model_dir), self.gpu_id, request.headers)

    def invoke(self, request: InferenceRequest) -> InferenceResponse:
        """One request through transform_fn or input_fn → predict_fn → output_fn."""
        context = self.context(request)
        content_type = codecs.media_type(request.content_type)
        accept = codecs.effective_accept(request.accept, self.default_accept)
        data = codecs.request_body(request.body, content_type)
        if self._transform is not None:
            result = self._transform(context, self.model, data, content_type, accept)
        else:
            assert self._input is not None
            assert self._predict is not None
            assert self._output is not None
            if self._output_is_default:  # a 406 before the model runs, not after
                codecs.negotiate(accept, self.default_accept)
            decoded = self._input(context, data, content_type)
            if self._batch is self._predict:
                prediction = self._predict([context], [decoded], self.model)[0]
            else:
                prediction = self._predict(context, decoded, self.model)
            result = self._output(context, prediction, accept)
        return self.response(result, accept, context)

    def invoke_batch(
        self, requests: Sequence[InferenceRequest]
    ) -> list[InferenceResponse | BaseException]:
        """Several requests; one batch-hook call when there is a hook. Never raises."""
        if self._batch is None:
            return [_capture(self.invoke, request) for request in requests]
        assert self._input is not None
        assert self._output is not None
        outcomes: list[InferenceResponse | BaseException | None] = [None] * len(requests)
        pending: list[tuple[int, Context, str, Any]] = []
        for index, request in enumerate(requests):
            try:
                context = self.context(request)
                content_type = codecs.media_type(request.content_type)
                accept = codecs.effective_accept(request.accept, self.default_accept)
                data = codecs.request_body(request.body, content_type)
                pending.append((index, context, accept, self._input(context, data, content_type)))
            except Exception as exc:
                outcomes[index] = exc
        if pending:
            contexts = [item[1] for item in pending]
            try:
                predictions = self._batch(contexts, [item[3] for item in pending], self.model)
                if len(predictions) != len(pending):
                    raise ValueError(
                        f"{self._batch.name} returned {len(predictions)} results "
                        f"for {len(pending)} inputs"
                    )
            except Exception as exc:
                for index, *_ in pending:
                    outcomes[index] = exc
            else:
                for (index, context, accept, _), prediction in zip(
                    pending, predictions, strict=True
                ):
                    outcomes[index] = _capture(self._encode, prediction, accept, context)
        return [outcome if outcome is not None else RuntimeError("lost") for outcome in outcomes]

    def _encode(self, prediction: Any, accept: str, context: Context) -> InferenceResponse:
        assert self._output is not None
        return self.response(self._output(context, prediction, accept), accept, context)

    def response(self, result: Any, accept: str, context: Context) -> InferenceResponse:
        """A handler result as the server's response (see the module docstring)."""
        content_type = context.response_content_type
        if isinstance(result, tuple) and len(result) == 2:
            result, content_type = result[0], content_type or result[1]
        if content_type is None:
            content_type = codecs.media_type(accept.split(",", 1)[0]) or accept
        return InferenceResponse(
            body=to_bytes(result),
            content_type=str(content_type),
            headers=dict(context.response_headers),
            status=context.response_status or 200,
        )


def to_bytes(result: Any) -> bytes:
    """A handler's body as bytes: bytes and str as they are, anything else as JSON."""
    if isinstance(result, bytes):
        return result
    if isinstance(result, str):
        return result.encode("utf-8")
    if isinstance(result, bytearray | memoryview):
        return bytes(result)
    if result is None:
        return b""
    try:
        return codecs.encode(result, codecs.JSON)
    except (TypeError, ValueError) as exc:
        raise UnencodableResult(
            f"The handler returned a {type(result).__name__}, which is not bytes, str, "
            f"(body, content_type) or JSON-serializable: {exc}"
        ) from exc


def _capture(func: Callable[..., InferenceResponse], *args: Any) -> InferenceResponse | Exception:
    try:
        return func(*args)
    except Exception as exc:
        return exc
