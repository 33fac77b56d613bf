"""Handler resolution: user functions vs defaults, the optional context, transform_fn."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest

from sageport.serving.context import InferenceRequest, InferenceResponse
from sageport.serving.errors import BadRequestBody, UnsupportedAccept
from sageport.serving.handler import Handler, load_user_module


def make_handler(tmp_path: Path, source: str, **kwargs: str) -> Handler:
    """A loaded Handler over a user module written from ``source`` (unique module name)."""
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    program = f"inference_{uuid.uuid4().hex[:8]}.py"
    (code / program).write_text(textwrap.dedent(source))
    handler = Handler(load_user_module(code, program), tmp_path, **kwargs)
    handler.load()
    return handler


def invoke(
    handler: Handler, body: bytes, content_type: str, accept: str | None = None, **headers: str
) -> InferenceResponse:
    return handler.invoke(InferenceRequest(body, content_type, accept, headers))


PLAIN = """
    def model_fn(model_dir):
        return lambda data: data * 2
"""


def test_plain_defaults_decode_predict_encode(tmp_path: Path) -> None:
    handler = make_handler(tmp_path, PLAIN)
    response = invoke(handler, b"[1, 2, 3]", "application/json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert json.loads(response.body) == [2, 4, 6]


def test_accept_list_and_csv(tmp_path: Path) -> None:
    handler = make_handler(tmp_path, PLAIN)
    response = invoke(handler, b"1,2\n3,4", "text/csv", "image/png, text/csv")
    assert response.content_type == "text/csv"
    assert response.body.decode().splitlines() == ["2.0,4.0", "6.0,8.0"]


def test_default_accept_used_for_star(tmp_path: Path) -> None:
    handler = make_handler(tmp_path, PLAIN, default_accept="text/csv")
    response = invoke(handler, b"[1, 2]", "application/json", "*/*")
    assert response.content_type == "text/csv"


def test_unsupported_accept_raises_before_predicting(tmp_path: Path) -> None:
    handler = make_handler(
        tmp_path,
        """
        def model_fn(model_dir):
            def model(data):
                raise AssertionError("the model must not run")
            return model
        """,
    )
    with pytest.raises(UnsupportedAccept):
        invoke(handler, b"[1]", "application/json", "image/png")


def test_functions_without_context(tmp_path: Path) -> None:
    handler = make_handler(
        tmp_path,
        """
        def model_fn(model_dir):
            return {"dir": model_dir}

        def input_fn(input_data, content_type):
            return (input_data, content_type)

        def predict_fn(data, model):
            return {"data": data[0], "type": data[1], "dir": model["dir"]}

        def output_fn(prediction, accept):
            import json
            return json.dumps(prediction), "application/vnd.custom+json"
        """,
    )
    response = invoke(handler, b'{"a": 1}', "application/json")
    assert response.content_type == "application/vnd.custom+json"
    assert json.loads(response.body) == {
        "data": '{"a": 1}',
        "type": "application/json",
        "dir": str(tmp_path),
    }


def test_functions_with_context(tmp_path: Path) -> None:
    handler = make_handler(
        tmp_path,
        """
        def model_fn(model_dir, context):
            return context.system_properties["model_dir"]

        def input_fn(input_data, content_type, context):
            return context.custom_attributes

        def predict_fn(data, model, context):
            return {"attributes": data, "model": model,
                    "header": context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")}

        def output_fn(prediction, accept, context):
            import json
            context.set_response_header(0, "X-Amzn-SageMaker-Custom-Attributes", "seen=1")
            context.set_response_content_type(0, "application/json")
            return json.dumps(prediction)
        """,
    )
    response = invoke(
        handler,
        b"x",
        "application/octet-stream",
        **{"x-amzn-sagemaker-custom-attributes": "trace=7"},
    )
    assert json.loads(response.body) == {
        "attributes": "trace=7",
        "model": str(tmp_path),
        "header": "trace=7",
    }
    assert response.headers == {"X-Amzn-SageMaker-Custom-Attributes": "seen=1"}


def test_transform_fn_replaces_the_pipeline(tmp_path: Path) -> None:
    handler = make_handler(
        tmp_path,
        """
        def model_fn(model_dir):
            return "m"

        def transform_fn(model, input_data, content_type, accept):
            return f"{model}|{input_data}|{content_type}|{accept}"
        """,
    )
    response = invoke(handler, b"hello", "text/csv", None)
    assert response.body == b"m|hello|text/csv|application/json"
    assert response.content_type == "application/json"


def test_transform_fn_with_input_fn_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Cannot use transform_fn"):
        make_handler(
            tmp_path,
            """
            def transform_fn(model, data, content_type, accept):
                return data

            def input_fn(data, content_type):
                return data
            """,
        )


def test_wrong_arity_is_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="model_fn takes 3 arguments but 1 were given"):
        make_handler(
            tmp_path,
            """
            def model_fn(a, b, c):
                return None
            """,
        )


def test_unencodable_result_is_500(tmp_path: Path) -> None:
    handler = make_handler(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            return object()
        """,
    )
    with pytest.raises(Exception, match="not bytes, str") as info:
        invoke(handler, b"", "application/json")
    assert getattr(info.value, "status_code", None) == 500


def test_no_model_fn_and_no_model_file(tmp_path: Path) -> None:
    handler = Handler(None, tmp_path)
    with pytest.raises(FileNotFoundError, match="model_fn"):
        handler.load()


def test_batch_predict_fn_gets_the_whole_batch(tmp_path: Path) -> None:
    handler = make_handler(
        tmp_path,
        """
        CALLS = []

        def model_fn(model_dir):
            return None

        def batch_predict_fn(inputs, model):
            CALLS.append(len(inputs))
            return [x.sum() for x in inputs]
        """,
    )
    requests = [
        InferenceRequest(b"[1, 2]", "application/json"),
        InferenceRequest(b"{broken", "application/json"),
        InferenceRequest(b"[3, 4]", "application/json"),
    ]
    outcomes = handler.invoke_batch(requests)
    assert isinstance(outcomes[0], InferenceResponse)
    assert json.loads(outcomes[0].body) == 3
    assert isinstance(outcomes[1], BadRequestBody)
    assert isinstance(outcomes[2], InferenceResponse)
    assert json.loads(outcomes[2].body) == 7
    assert handler.user["batch_predict_fn"].__globals__["CALLS"] == [2]


def test_predict_fn_annotated_with_list_is_a_batch_hook(tmp_path: Path) -> None:
    handler = make_handler(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def predict_fn(batch: list, model):
            return [len(batch)] * len(batch)
        """,
    )
    assert handler.batched
    outcomes = handler.invoke_batch([InferenceRequest(b"[1]", "application/json")] * 3)
    assert [json.loads(o.body) for o in outcomes if isinstance(o, InferenceResponse)] == [3, 3, 3]
    # Unbatched, it receives a list of one.
    assert json.loads(invoke(handler, b"[1]", "application/json").body) == 1
