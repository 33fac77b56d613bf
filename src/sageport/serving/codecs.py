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

import importlib
import io
import json
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


def _json_to_numpy(data: str | bytes) -> Any:
    return np.array(json.loads(_text(data)))


def _csv_to_numpy(data: str | bytes) -> Any:
    return np.genfromtxt(io.StringIO(_text(data)), delimiter=",")


def _npy_to_numpy(data: str | bytes) -> Any:
    return np.load(io.BytesIO(_binary(data)), allow_pickle=True)


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
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(prediction))
    return buffer.getvalue()


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    JSON: _array_to_json,
    CSV: _array_to_csv,
    NPY: _array_to_npy,
}
