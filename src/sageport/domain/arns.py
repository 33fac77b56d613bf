"""SageMaker ARNs, built the way AWS builds them (resource names lower-cased)."""

from __future__ import annotations


def sagemaker_arn(region: str, account_id: str, resource_type: str, name: str) -> str:
    """``arn:aws:sagemaker:<region>:<account>:<type>/<name>``; SageMaker lower-cases names."""
    return f"arn:aws:sagemaker:{region}:{account_id}:{resource_type}/{name.lower()}"


def parse_sagemaker_arn(arn: str) -> tuple[str, str] | None:
    """``(resource_type, name)`` of a SageMaker ARN, or ``None`` if it is not one."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sagemaker" or "/" not in parts[5]:
        return None
    resource_type, _, name = parts[5].partition("/")
    return resource_type, name
