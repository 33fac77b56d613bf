"""The dispatch tables agree with botocore's models, and the coverage page is current."""

from __future__ import annotations

from pathlib import Path

from sageport.api.app import IAM_MODULES, LOGS_MODULES, SAGEMAKER_MODULES, STS_MODULES
from sageport.api.coverage import render
from sageport.api.dispatch import collect
from sageport.api.service_models import ServiceModels


def test_every_handler_answers_an_operation_of_the_model() -> None:
    models = ServiceModels()
    for service, modules in (
        ("sagemaker", SAGEMAKER_MODULES),
        ("logs", LOGS_MODULES),
        ("sts", STS_MODULES),
        ("iam", IAM_MODULES),
    ):
        names = set(models.get(service).operation_names)
        assert set(collect(*modules)) <= names


def test_coverage_page_is_generated_from_the_tables() -> None:
    page = Path(__file__).parents[3] / "docs" / "api-coverage.md"
    assert page.read_text() == render(), (
        "run: python -m sageport.api.coverage > docs/api-coverage.md"
    )
