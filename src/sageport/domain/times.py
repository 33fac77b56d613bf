"""Timestamps as they travel inside sageport: aware datetimes, ISO text in JSON, epoch numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def to_datetime(value: Any) -> datetime:
    """Accept the forms a timestamp takes inside sageport: datetime, ISO text, epoch seconds."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
