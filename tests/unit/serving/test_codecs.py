"""The toolkit's default decoders/encoders: round trips, Accept rules, and error statuses."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import scipy.sparse  # type: ignore[import-untyped]

from sageport.serving import codecs
from sageport.serving.errors import BadRequestBody, UnsupportedAccept, UnsupportedContentType


def test_json_decodes_to_numpy_array() -> None:
    decoded = codecs.decode("[[1, 2], [3, 4]]", codecs.JSON)
    assert isinstance(decoded, np.ndarray)
    assert decoded.tolist() == [[1, 2], [3, 4]]


def test_csv_decodes_with_genfromtxt() -> None:
    decoded = codecs.decode("1,2,3\n4,5,6\n", codecs.CSV)
    np.testing.assert_array_equal(decoded, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_npy_round_trip_keeps_dtype_and_shape() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    decoded = codecs.decode(codecs.encode(array, codecs.NPY), codecs.NPY)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, array)


def test_npz_decodes_a_scipy_sparse_matrix() -> None:
    matrix = scipy.sparse.csr_matrix(np.eye(3))
    buffer = io.BytesIO()
    scipy.sparse.save_npz(buffer, matrix)
    decoded = codecs.decode(buffer.getvalue(), codecs.NPZ)
    np.testing.assert_array_equal(decoded.toarray(), np.eye(3))


def test_json_and_csv_encoders() -> None:
    array = np.array([[1.5, 2.0], [3.0, 4.0]])
    assert json.loads(codecs.encode(array, codecs.JSON)) == [[1.5, 2.0], [3.0, 4.0]]
    assert codecs.encode(array, codecs.CSV).decode().splitlines() == ["1.5,2.0", "3.0,4.0"]


def test_json_encoder_handles_nested_arrays() -> None:
    encoded = codecs.encode({"scores": np.array([1, 2])}, codecs.JSON)
    assert json.loads(encoded) == {"scores": [1, 2]}


def test_unsupported_content_type_is_415() -> None:
    with pytest.raises(UnsupportedContentType) as info:
        codecs.decode(b"x", "image/png")
    assert info.value.status_code == 415
    assert "Content type image/png is not supported by this framework" in info.value.message


def test_undecodable_body_is_400() -> None:
    with pytest.raises(BadRequestBody) as info:
        codecs.decode("{not json", codecs.JSON)
    assert info.value.status_code == 400
    with pytest.raises(BadRequestBody):
        codecs.decode(b"not an npy file", codecs.NPY)


def test_invalid_utf8_body_is_400() -> None:
    with pytest.raises(BadRequestBody):
        codecs.request_body(b"\xff\xfe", codecs.JSON)
    assert codecs.request_body(b"\xff", codecs.NPY) == b"\xff"
    assert codecs.request_body(b"[1]", codecs.JSON) == "[1]"


def test_negotiate_picks_first_encodable_type() -> None:
    assert codecs.negotiate("image/png, text/csv, application/json", codecs.JSON) == codecs.CSV
    assert codecs.negotiate("application/x-npy;q=0.9", codecs.JSON) == codecs.NPY
    assert codecs.negotiate("image/png, */*", codecs.NPY) == codecs.NPY


def test_unsupported_accept_is_406() -> None:
    with pytest.raises(UnsupportedAccept) as info:
        codecs.negotiate("image/png", codecs.JSON)
    assert info.value.status_code == 406
    with pytest.raises(UnsupportedAccept):
        codecs.negotiate(codecs.NPZ, codecs.JSON)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/csv"),
        ("", "text/csv"),
        ("*/*", "text/csv"),
        ("application/json", "application/json"),
    ],
)
def test_effective_accept_falls_back_to_default(accept: str | None, expected: str) -> None:
    assert codecs.effective_accept(accept, "text/csv") == expected


def test_media_type_drops_parameters() -> None:
    assert codecs.media_type("Application/JSON; charset=utf-8") == "application/json"
    assert codecs.media_type(None) is None
