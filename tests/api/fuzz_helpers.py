"""Shape-driven fuzzing of the JSON control planes (SageMaker, CloudWatch Logs).

Shared by ``tests/api/test_fuzz.py`` (a bounded run in CI) and ``bench/fuzz.py`` (a longer
one that prints a table). Requests are generated from the botocore input shape of each
implemented operation: mostly valid structures (required members always, optional ones
sometimes, enums, ranges and patterns respected) in which some leaves are hostile: numbers
out of every range, NaN and infinities, timestamps at the end of time, lone surrogates, NUL
and newlines, wrong types, empty containers, very long strings, deep nesting. Names come
from a small pool, so a Describe/Stop/Delete often finds what an earlier Create stored.

Bodies are raw bytes signed with botocore's ``SigV4Auth`` (not its serializer, which would
refuse most of them) and sent over one keep-alive ``http.client`` connection, so a
dropped connection is seen as such.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import OperationModel, ServiceModel, Shape
from hypothesis import strategies as st

from sageport.api.app import LOGS_MODULES, SAGEMAKER_MODULES
from sageport.api.dispatch import collect

#: service → (SigV4 signing name, X-Amz-Target prefix, handler modules)
SERVICES: dict[str, tuple[str, str, tuple[Any, ...]]] = {
    "sagemaker": ("sagemaker", "SageMaker", SAGEMAKER_MODULES),
    "logs": ("logs", "Logs_20140328", LOGS_MODULES),
}

# -- hostile values ----------------------------------------------------------------------------

#: JSON number tokens Python's json module writes and reads, but no AWS client ever sends
NAN, INF, NINF = float("nan"), float("inf"), float("-inf")
HUGE_NUMBERS: list[Any] = [10**30, -(10**30), 2**63, 2**63 - 1, -(2**63) - 1, 2**64, 1e300,
                           -1e300, NAN, INF, NINF, 1e-320, -1, 0, 1.5, 10**400]  # fmt: skip
HOSTILE_TIMES: list[Any] = [1e300, -1e300, NAN, INF, NINF, "NaN", "Infinity", "-1e300",
                            253402300800, -62135596801, 10**30, 2**63, 1e20,
                            "9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "0001-01-01",
                            "2020-13-45T00:00:00Z", "", "now", "1e300", "\ud800"]  # fmt: skip
HOSTILE_STRINGS: list[Any] = ["", "\x00", "a\x00b", "a\nb", "\r\n", "\ud800", "\udfff",
                              "a\ud800b", "x" * 70000, "../../../../etc/passwd", "%s%n%x",
                              "\u202e", " ", "\t", "s3://bad\nbucket/key", "s3://b/k\x00ey",
                              "s3://", "s3:///k", "https://x", "s3://UPPER_case/k",
                              "s3://b/" + "k" * 2000, "\ufeff", "'\";--"]  # fmt: skip
WRONG_TYPES: list[Any] = [None, True, False, [], {}, "1", 1, 1.5, [None], {"": None}]

NAME_POOL = ["fuzz-a", "fuzz-b", "fuzz-c"]
IMAGES = [
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310",
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310",
]
#: S3 URIs that pass the model's pattern, some of them still wrong (a newline in the bucket)
S3_URIS = ["s3://fuzz-bucket/data", "s3://fuzz-bucket/a\nb/x", "s3://bad\nbucket/x",
           "s3://fuzz-bucket/", "s3://fuzz-bucket", "s3://fuzz-bucket/../../x",
           "s3://Bad_Bucket/x", "s3://a/x", "s3://fuzz-bucket/model.tar.gz"]  # fmt: skip
INSTANCE_TYPES = ["ml.m5.xlarge", "ml.c5.xlarge", "ml.g5.xlarge", "ml.p4d.24xlarge",
                  "ml.t3.medium", "ml.m5.large"]  # fmt: skip
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
ARNS = [f"arn:aws:sagemaker:us-east-1:000000000000:{kind}/{name}"
        for kind in ("training-job", "processing-job", "model", "endpoint", "endpoint-config")
        for name in NAME_POOL[:2]]  # fmt: skip
#: optional members a service reads to get anywhere: included more often
IMPORTANT = {"InstanceType", "InstanceCount", "AlgorithmSpecification", "ResourceConfig",
             "PrimaryContainer", "Environment", "ContainerEntrypoint", "InputDataConfig",
             "StoppingCondition", "ModelName", "TrainingImage", "TrainingInputMode",
             "HyperParameters", "ProcessingInputs", "ProcessingOutputConfig", "S3Input",
             "S3Output", "ImageUri", "Image", "InitialInstanceCount", "VariantName",
             "CheckpointConfig", "DataSource", "S3DataSource"}  # fmt: skip


def _hostile(shape: Shape) -> st.SearchStrategy[Any]:
    kind = shape.type_name
    if kind == "timestamp":
        pool = HOSTILE_TIMES + WRONG_TYPES
    elif kind in ("integer", "long", "float", "double"):
        pool = HUGE_NUMBERS + WRONG_TYPES
    elif kind in ("string", "blob"):
        pool = HOSTILE_STRINGS + WRONG_TYPES
    else:
        pool = [*WRONG_TYPES, "", 0, HUGE_NUMBERS[0]]
    return st.sampled_from(pool)


# -- valid-ish values from shapes --------------------------------------------------------------

_REGEX_CACHE: dict[str, st.SearchStrategy[str] | None] = {}


def _from_pattern(pattern: str) -> st.SearchStrategy[str] | None:
    if pattern not in _REGEX_CACHE:
        try:
            re.compile(pattern)
            strat: st.SearchStrategy[str] | None = st.from_regex(pattern, fullmatch=True)
        except re.error:
            strat = None
        _REGEX_CACHE[pattern] = strat
    return _REGEX_CACHE[pattern]


def _special(name: str, shape: Shape) -> st.SearchStrategy[Any] | None:
    """Plausible values for members a service looks into (so requests get past it)."""
    sname = shape.name
    if sname.endswith("Name") and sname not in ("InstanceType",) and not shape.enum:
        return st.sampled_from(NAME_POOL)
    if name in ("TrainingImage", "ImageUri", "Image"):
        return st.sampled_from(IMAGES)
    if sname == "S3Uri" or name.endswith("S3Uri") or name in ("ModelDataUrl", "S3OutputPath"):
        return st.sampled_from(S3_URIS)
    if name in ("RoleArn", "ExecutionRoleArn"):
        return st.just(ROLE)
    if name == "ResourceArn":
        return st.sampled_from(ARNS)
    if name == "InstanceType" and shape.enum:
        common = [t for t in INSTANCE_TYPES if t in shape.enum]
        return st.one_of(st.sampled_from(common), st.sampled_from(list(shape.enum)))
    if name in ("InstanceCount", "InitialInstanceCount"):
        return st.integers(1, 2)
    if name == "LocalPath":
        return st.sampled_from(["/opt/ml/processing/input/a", "/opt/ml/processing/output/b"])
    if sname == "LogGroupName" or name == "logGroupName":
        return st.sampled_from(["/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs",
                                "/aws/sagemaker/Endpoints/fuzz-a", "nope"])  # fmt: skip
    return None


@dataclass
class Generator:
    """Hypothesis strategies for the request bodies of one service's operations."""

    model: ServiceModel
    hostile_rate: float = 0.08
    optional_rate: float = 0.35
    max_depth: int = 6
    _cache: dict[str, Any] = field(default_factory=dict)

    def body(self, op: OperationModel) -> st.SearchStrategy[bytes]:
        """A whole request body: a clean one from the shape (so the request gets past
        validation into the service), one with hostile leaves, or a broken document."""
        clean = Generator(self.model, hostile_rate=0.0, optional_rate=self.optional_rate)
        return st.one_of(
            clean.params(op).map(_dumps),
            self.params(op).map(_dumps),
            self.params(op).map(_dumps),
            raw_bodies(op),
        )

    def params(self, op: OperationModel) -> st.SearchStrategy[Any]:
        shape = op.input_shape
        if shape is None:
            return st.just({})
        return st.deferred(lambda: self._value("", shape, 0))

    def _value(self, name: str, shape: Shape, depth: int) -> st.SearchStrategy[Any]:
        normal = self._normal(name, shape, depth)
        if not self.hostile_rate:
            return normal
        # hypothesis draws small integers far more often than others: a Random it controls
        # gives the rates meant here
        return st.randoms(use_true_random=False).flatmap(
            lambda rnd: _hostile(shape) if rnd.random() < self.hostile_rate else normal
        )

    def _normal(self, name: str, shape: Shape, depth: int) -> st.SearchStrategy[Any]:
        kind = shape.type_name
        meta = shape.metadata
        if kind == "structure":
            return self._structure(shape, depth)
        if kind == "list":
            if name == "ContainerEntrypoint":
                return st.just(["python3", "-c", "print(1)"])
            lo = int(meta.get("min", 0))
            hi = max(lo, min(int(meta.get("max", 3)), lo + 3))
            if depth >= self.max_depth:
                hi = lo
            return st.lists(self._value(name, shape.member, depth + 1), min_size=lo, max_size=hi)  # type: ignore[attr-defined]
        if kind == "map":
            keys = self._normal("", shape.key, depth + 1)  # type: ignore[attr-defined]
            values = self._value(name, shape.value, depth + 1)  # type: ignore[attr-defined]
            hi = 0 if depth >= self.max_depth else 3
            return st.dictionaries(keys, values, max_size=hi)
        special = _special(name, shape)
        if special is not None:
            return special
        if kind == "string":
            if shape.enum:
                return st.sampled_from(list(shape.enum))
            lo = int(meta.get("min", 0))
            hi = max(lo, min(int(meta.get("max", 64)), 64))
            pattern = meta.get("pattern")
            if pattern:
                strat = _from_pattern(pattern)
                if strat is not None:
                    top = int(meta.get("max", 256))
                    return strat.map(_clean).filter(lambda s: lo <= len(s) <= top)
            return st.text(TEXT, min_size=lo, max_size=hi)
        if kind in ("integer", "long"):
            lo = int(meta.get("min", 0))
            return st.integers(lo, int(meta.get("max", max(lo, 0) + 100)))
        if kind in ("float", "double"):
            return st.floats(
                float(meta.get("min", 0.0)), float(meta.get("max", 1000.0)), allow_nan=False
            )
        if kind == "boolean":
            return st.booleans()
        if kind == "timestamp":
            return st.one_of(
                st.floats(0, 4102444800, allow_nan=False),
                st.sampled_from(["2024-01-01T00:00:00Z", "2030-06-01T12:00:00+02:00"]),
            )
        if kind == "blob":
            return st.binary(max_size=64).map(lambda b: __import__("base64").b64encode(b).decode())
        return st.none()

    def _structure(self, shape: Shape, depth: int) -> st.SearchStrategy[Any]:
        members = shape.members  # type: ignore[attr-defined]
        required = set(shape.required_members)  # type: ignore[attr-defined]

        @st.composite
        def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            rnd = draw(st.randoms(use_true_random=False))
            for mname, mshape in members.items():
                if mname in required:
                    if self.hostile_rate and rnd.random() < 0.03:
                        continue  # a required member left out
                elif depth >= self.max_depth or rnd.random() >= (
                    0.8 if mname in IMPORTANT else self.optional_rate
                ):
                    continue
                out[mname] = draw(self._value(mname, mshape, depth + 1))
            return out

        return build()


#: what clean strings are made of: any Unicode but NUL and the surrogates
TEXT = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))


def _clean(text: str) -> str:
    return text.replace("\x00", "")


def _dumps(value: Any) -> bytes:
    # ensure_ascii turns lone surrogates into \\ud800 escapes, which every JSON parser reads
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def raw_bodies(op: OperationModel) -> st.SearchStrategy[bytes]:
    """Documents no serializer would write: broken JSON, deep nesting, raw surrogates."""
    members = list(op.input_shape.members) if op.input_shape else ["X"]
    first = members[0] if members else "X"
    return st.sampled_from(
        [
            b"[" * 10000,
            b"[" * 10000 + b"]" * 10000,
            b'{"' + first.encode() + b'":' + b"[" * 100000 + b"]" * 100000 + b"}",
            b'{"' + first.encode() + b'":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
            b"{" * 3000,
            b'{"' + first.encode() + b'": "\xed\xa0\x80"}',  # a surrogate as raw UTF-8
            b'{"' + first.encode() + b'": "\xff\xfe"}',
            b'{"' + first.encode() + b'": "\\ud800"}',
            b'{"' + first.encode() + b'": NaN}',
            b'{"' + first.encode() + b'": -Infinity}',
            b'{"' + first.encode() + b'": 1' + b"0" * 5000 + b"}",
            b'{"' + first.encode() + b'": 1e99999}',
            b'{"' + first.encode() + b'": 0.' + b"0" * 5000 + b"1}",
            b"null",
            b"[]",
            b"1e999",
            b'"just a string"',
            b"{",
            b"\x00",
            b"\xef\xbb\xbf{}",
            '{"a": "é"}'.encode("utf-16"),
            b'{"' + first.encode() + b'": 1, "' + first.encode() + b'": 2}',
        ]
    )


# -- the wire ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int  # 0 when the connection dropped
    body: bytes
    dropped: bool


class Wire:
    """One keep-alive connection that signs and sends raw bodies."""

    def __init__(self, host: str, port: int, keys: tuple[str, str], region: str) -> None:
        self.host, self.port, self.region = host, port, region
        self._creds = Credentials(*keys)
        self._conn = http.client.HTTPConnection(host, port, timeout=60)

    def close(self) -> None:
        self._conn.close()

    def send(
        self,
        signing_name: str,
        target: str,
        body: bytes,
        path: str = "/",
        method: str = "POST",
        headers: dict[str, str] | None = None,
        content_type: str = "application/x-amz-json-1.1",
    ) -> Outcome:
        url = f"http://{self.host}:{self.port}{path}"
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        if target:
            request.headers["X-Amz-Target"] = target
        if content_type:
            request.headers["Content-Type"] = content_type
        SigV4Auth(self._creds, signing_name, self.region).add_auth(request)
        out = dict(request.headers.items())
        try:
            self._conn.request(method, path, body=body, headers=out)
            resp = self._conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            return Outcome(0, b"", True)
        closed = (resp.getheader("connection") or "").lower() == "close"
        if closed:
            self._conn.close()
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        return Outcome(resp.status, data, closed)


def json_error_problem(outcome: Outcome) -> str | None:
    """Why an answer breaks the contract (5xx, dropped, not an AWS JSON error), or None."""
    if outcome.dropped:
        return "connection dropped"
    if outcome.status >= 500:
        return f"status {outcome.status}: {outcome.body[:300]!r}"
    if outcome.status >= 400:
        try:
            doc = json.loads(outcome.body)
        except ValueError:
            return f"status {outcome.status} with a body that is not JSON: {outcome.body[:200]!r}"
        if not isinstance(doc, dict) or "__type" not in doc:
            return f"status {outcome.status} error without __type: {outcome.body[:200]!r}"
        if not ("message" in doc or "Message" in doc):
            return f"status {outcome.status} error without message: {outcome.body[:200]!r}"
    return None


def implemented(service: str) -> tuple[ServiceModel, list[OperationModel]]:
    """The botocore model of ``service`` and the operations sageport's dispatch table serves."""
    model = botocore.session.get_session().get_service_model(service)
    table = collect(*SERVICES[service][2])
    return model, [model.operation_model(n) for n in sorted(table, key=_life_order)]


#: operations run in the order of a resource's life, so Describe/Stop/Delete find what the
#: Creates stored (with the values the fuzz gave them)
LIFE = ("Create", "Add", "Describe", "List", "Get", "Filter", "Update", "Stop", "Delete")


def _life_order(name: str) -> tuple[int, str]:
    verb = next((i for i, v in enumerate(LIFE) if name.startswith(v)), len(LIFE))
    return verb, name


def target_of(service: str, op: OperationModel) -> str:
    return f"{SERVICES[service][1]}.{op.name}"


#: the server settings fuzz runs use: four fake GPUs and loose CPU accounting, so instance
#: types are admitted (the jobs it creates then fail at staging: their data does not exist)
SETTINGS = 'fake_gpus = "4"\ncpu_overcommit = 100.0\nmemory_overcommit = 100.0\n'
