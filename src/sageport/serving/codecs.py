"""The inference toolkit's default decoders and encoders, and Accept negotiation.

Same behaviour as ``sagemaker_inference.decoder``/``encoder`` (and the PyTorch container's
defaults): ``application/json`` → ``np.array(json.loads(body))``, ``text/csv`` →
``np.genfromtxt(delimiter=",")``, ``application/x-npy`` → ``np.load(allow_pickle=True)``,
``application/x-npz`` → ``scipy.sparse.load_npz`` (a plain ``np.savez`` archive becomes a dict
of arrays when scipy cannot read it); encoders to JSON, CSV and NPY (npz is not encodable).

Two deliberate differences from the toolkit, because clients deserve them: a body that does
not decode is a 400 (the toolkit answers 500 with the parser's traceback), and an unsupported
Content-Type / Accept is a 415 / 406 (the toolkit's ``UnsupportedFormatError`` is a 500) — the
message text is the toolkit's. Content-Type parameters (``; charset=utf-8``) are ignored.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from sageport.serving.errors import BadRequestBody, UnsupportedAccept, UnsupportedContentType

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
NPZ = "application/x-npz"
ANY = "*/*"
UTF8_TYPES = frozenset({JSON, CSV})
DECODABLE = frozenset({JSON, CSV, NPY, NPZ})
ENCODABLE = (JSON, CSV, NPY)


def media_type(header: str | None) -> str | None:
    """``"application/json; charset=utf-8"`` → ``"application/json"``; None stays None."""
    if header is None:
        return None
    return header.split(";", 1)[0].strip().lower() or None


def request_body(body: bytes, content_type: str | None) -> str | bytes:
    """What handlers receive: text for JSON and CSV (as the toolkit), bytes otherwise."""
    if content_type in UTF8_TYPES:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            message = f"Request body is not valid UTF-8 for {content_type}: {exc}"
            raise BadRequestBody(message) from exc
    return body


def effective_accept(accept: str | None, default_accept: str) -> str:
    """The Accept a handler sees: the default when missing or ``*/*`` (the toolkit's rule)."""
    if not accept or accept.strip() == ANY:
        return default_accept
    return accept


def accept_types(accept: str, default_accept: str) -> list[str]:
    """Accept split on commas, parameters (``;q=``) dropped, ``*/*`` as the default type."""
    types: list[str] = []
    for part in accept.split(","):
        kind = media_type(part)
        if kind is None:
            continue
        types.append(media_type(default_accept) or JSON if kind == ANY else kind)
    return types


def decode(data: str | bytes, content_type: str | None) -> Any:
    """Decode a request body into numpy (or a scipy sparse matrix for npz)."""
    decoder = _DECODERS.get(content_type or "")
    if decoder is None:
        raise UnsupportedContentType(content_type)
    try:
        return decoder(data)
    except Exception as exc:  # whatever the parser raises, the body is at fault
        raise BadRequestBody(f"Could not decode the request body as {content_type}: {exc}") from exc


def encode(prediction: Any, content_type: str) -> bytes:
    """Encode a prediction as ``content_type`` (one of ``ENCODABLE``)."""
    encoder = _ENCODERS.get(content_type)
    if encoder is None:
        raise UnsupportedAccept(content_type)
    return encoder(prediction)


def negotiate(accept: str, default_accept: str) -> str:
    """The first type in ``accept`` that can be encoded, or ``UnsupportedAccept`` (406)."""
    for kind in accept_types(accept, default_accept):
        if kind in _ENCODERS:
            return kind
    raise UnsupportedAccept(accept)


def encode_for_accept(prediction: Any, accept: str, default_accept: str) -> tuple[bytes, str]:
    """The default ``output_fn``: the first encodable Accept type → ``(body, content_type)``."""
    kind = negotiate(accept, default_accept)
    return encode(prediction, kind), kind


# -- decoders --------------------------------------------------------------------------------


def _text(data: str | bytes) -> str:
    return data.decode("utf-8") if isinstance(data, bytes | bytearray) else data


def _binary(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


@functools.cache
def _orjson() -> Any:
    """orjson when installed: it parses a 784-float body in ~25 µs where json takes ~290 µs."""
    try:
        return importlib.import_module("orjson")
    except ImportError:
        return None


def json_loads(data: str | bytes) -> Any:
    """``json.loads``, through orjson when installed; json decides whatever orjson refuses
    (NaN/Infinity literals, integers beyond 64 bits), so results never differ."""
    fast = _orjson()
    if fast is not None:
        try:
            return fast.loads(data)
        except ValueError:
            pass
    return json.loads(data)


def _json_to_numpy(data: str | bytes) -> Any:
    return np.array(json_loads(data))


def _csv_to_numpy(data: str | bytes) -> Any:
    return np.genfromtxt(io.StringIO(_text(data)), delimiter=",")


_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER = re.compile(
    r"\{'descr': '([<>|=][a-zA-Z]\d*)', 'fortran_order': (True|False), "
    r"'shape': \(((?:\d+, ?)*\d*)\),? ?\}"
)


def _npy_to_numpy(data: str | bytes) -> Any:
    raw = _binary(data)
    array = _read_simple_npy(raw)
    if array is not None:
        return array
    return np.load(io.BytesIO(raw), allow_pickle=True)


def _read_simple_npy(raw: bytes) -> Any:
    """A plain numeric .npy read without ``np.load``'s ``ast`` header parse (~100 µs), or None.

    Only the header numpy itself writes for non-object dtypes is recognised; anything else
    (object arrays, structured dtypes, odd headers) goes to ``np.load``.
    """
    if raw[:6] != _NPY_MAGIC or len(raw) < 10:
        return None
    major = raw[6]
    if major == 1:
        start, length = 10, int.from_bytes(raw[8:10], "little")
    elif major in (2, 3) and len(raw) >= 12:
        start, length = 12, int.from_bytes(raw[8:12], "little")
    else:
        return None
    match = _NPY_HEADER.match(raw[start : start + length].decode("latin-1").strip())
    if match is None:
        return None
    descr, fortran, shape_text = match.groups()
    dtype = np.dtype(descr)
    if dtype.hasobject:
        return None
    shape = tuple(int(part) for part in shape_text.replace(" ", "").split(",") if part)
    count = int(np.prod(shape)) if shape else 1
    offset = start + length
    if len(raw) - offset != count * dtype.itemsize:
        return None
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).copy()
    return flat.reshape(shape, order="F" if fortran == "True" else "C")


def _npz_to_sparse(data: str | bytes) -> Any:
    raw = _binary(data)
    try:
        sparse: Any = importlib.import_module("scipy.sparse")
        return sparse.load_npz(io.BytesIO(raw))
    except ImportError:
        pass
    except (ValueError, KeyError):
        pass
    # Not a scipy sparse archive (or no scipy): the arrays of an np.savez archive.
    with np.load(io.BytesIO(raw), allow_pickle=True) as archive:
        return {name: archive[name] for name in archive.files}


_DECODERS: dict[str, Callable[[str | bytes], Any]] = {
    JSON: _json_to_numpy,
    CSV: _csv_to_numpy,
    NPY: _npy_to_numpy,
    NPZ: _npz_to_sparse,
}


# -- encoders --------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _array_to_json(prediction: Any) -> bytes:
    if hasattr(prediction, "tolist"):
        prediction = prediction.tolist()
    return json.dumps(prediction, default=_default).encode("utf-8")


def _array_to_csv(prediction: Any) -> bytes:
    stream = io.StringIO()
    np.savetxt(stream, np.asarray(prediction), delimiter=",", fmt="%s")
    return stream.getvalue().encode("utf-8")


def _array_to_npy(prediction: Any) -> bytes:
    array = np.asarray(prediction)
    if array.dtype.hasobject:
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()
    # np.save's header, written directly (format 1.0; np.save costs ~50 µs more for this).
    if not array.flags.c_contiguous:
        array = array.copy(order="C")  # np.ascontiguousarray would turn a 0-d array 1-d
    header = f"{{'descr': {array.dtype.str!r}, 'fortran_order': False, 'shape': {array.shape!r}, }}"
    padding = 64 - (10 + len(header) + 1) % 64
    header_bytes = (header + " " * (padding % 64) + "\n").encode("latin-1")
    return (
        _NPY_MAGIC
        + b"\x01\x00"
        + len(header_bytes).to_bytes(2, "little")
        + header_bytes
        + array.tobytes()
    )


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    JSON: _array_to_json,
    CSV: _array_to_csv,
    NPY: _array_to_npy,
}
