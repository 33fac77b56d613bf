"""The S3 model's routing table names every operation a request can be."""

from __future__ import annotations

import pytest

from sageport.api.s3 import IMPLEMENTED_OPERATIONS, route
from sageport.api.s3routes import ModelRoutes
from sageport.api.s3xml import error_xml, xml_safe
from sageport.api.service_models import ServiceModels

ROUTES = ModelRoutes(ServiceModels().get("s3"))


@pytest.mark.parametrize(
    ("method", "bucket", "key", "query", "headers", "expected"),
    [
        ("GET", "", "", {}, set(), "ListBuckets"),
        ("GET", "b", "", {}, set(), "ListObjects"),
        ("GET", "b", "", {"list-type": "2", "prefix": "x"}, set(), "ListObjectsV2"),
        ("GET", "b", "", {"location": ""}, set(), "GetBucketLocation"),
        ("POST", "b", "", {"delete": ""}, set(), "DeleteObjects"),
        ("PUT", "b", "k", {}, set(), "PutObject"),
        ("PUT", "b", "k", {}, {"x-amz-copy-source"}, "CopyObject"),
        ("PUT", "b", "k", {"uploadId": "u", "partNumber": "1"}, set(), "UploadPart"),
        ("PUT", "b", "k", {"uploadId": "u", "partNumber": "1"}, {"x-amz-copy-source"},
         "UploadPartCopy"),
        ("GET", "b", "k", {"uploadId": "u"}, set(), "ListParts"),
        ("POST", "b", "k", {"uploadId": "u"}, set(), "CompleteMultipartUpload"),
        ("GET", "b", "", {"tagging": ""}, set(), "GetBucketTagging"),
        ("GET", "b", "", {"lifecycle": ""}, set(), "GetBucketLifecycleConfiguration"),
        ("GET", "b", "", {"analytics": ""}, set(), "ListBucketAnalyticsConfigurations"),
        ("GET", "b", "", {"analytics": "", "id": "x"}, set(), "GetBucketAnalyticsConfiguration"),
        ("GET", "b", "k", {"attributes": ""}, set(), "GetObjectAttributes"),
        ("PUT", "b", "k", {"renameObject": ""}, set(), "RenameObject"),
    ],
)  # fmt: skip
def test_requests_name_their_model_operation(
    method: str, bucket: str, key: str, query: dict[str, str], headers: set[str], expected: str
) -> None:
    assert ROUTES.operation(method, bucket, key, query, headers) == expected


def test_served_routes_agree_with_the_model() -> None:
    cases = [
        ("GET", "b", "", {"uploads": ""}, set()),
        ("HEAD", "b", "k", {}, set()),
        ("DELETE", "b", "k", {"uploadId": "u"}, set()),
        ("POST", "b", "k", {"uploads": ""}, set()),
        ("PUT", "b", "", {}, set()),
        ("PUT", "b", "k", {"uploadId": "u", "partNumber": "1"}, {"x-amz-copy-source"}),
    ]
    for method, bucket, key, query, headers in cases:
        modeled = ROUTES.operation(method, bucket, key, query, headers)
        assert modeled in IMPLEMENTED_OPERATIONS
        assert route(method, bucket, key, set(query), "x-amz-copy-source" in headers) == modeled


def test_error_documents_survive_characters_xml_cannot_hold() -> None:
    from xml.etree import ElementTree as ET

    assert xml_safe("a\x00b\udc80c") == "a%00b%ED%B2%80c"
    doc = ET.fromstring(error_xml("InvalidBucketName", "bad \x01", {"BucketName": "x\x00y"}))
    assert doc.findtext("BucketName") == "x%00y"
