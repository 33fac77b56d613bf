"""Why a job cannot be run under the container contract.

These are plain ``ValueError`` subclasses because ``runtime`` sits below the AWS error layer:
the service that calls it turns one into a ``ValidationException`` (at CreateTrainingJob) or a
job ``FailureReason`` (at start), whose message is this exception's message, unchanged.
"""

from __future__ import annotations


class ContractError(ValueError):
    """A job spec the container contract cannot honour; the message is user-facing."""


class UnknownImage(ContractError):
    """A ``TrainingImage``/``Image`` we cannot map to a local Python runtime."""


class InvalidEntryPoint(ContractError):
    """A ``sagemaker_program`` the toolkit would refuse (same rules, same wording)."""
