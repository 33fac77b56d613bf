"""Endpoint statuses and the moves between them.

An endpoint is ``Creating`` until every instance of every variant answers ``/ping``;
``Updating`` while a new configuration's instances start beside the old ones (traffic moves
only when all are ready, so no request is dropped); ``Deleting`` while its processes stop.
A failed update rolls back: the old instances keep serving and the endpoint is
``InService`` again with the reason in ``FailureReason``. When the new configuration does not
fit beside the old one, the update replaces instances one at a time (old ones stop to make
room); if such an update fails and an old instance cannot be brought back, the endpoint is
``UpdateRollbackFailed``: what still runs keeps serving, and it can be updated or deleted.
"""

from __future__ import annotations

import enum

from sageport.domain.status import TransitionTable


class EndpointStatus(enum.StrEnum):
    CREATING = "Creating"
    """Instances are being started; InvokeEndpoint answers ModelNotReadyException."""
    IN_SERVICE = "InService"
    """Every instance answered /ping; requests are routed."""
    UPDATING = "Updating"
    """A new configuration is starting beside the serving one."""
    ROLLING_BACK = "RollingBack"
    """The new configuration failed; its instances are being stopped."""
    DELETING = "Deleting"
    """Processes are being stopped; the endpoint disappears after."""
    FAILED = "Failed"
    """Creation failed; FailureReason says why (e.g. the traceback tail of model_fn)."""
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"
    """A rolling update failed and an old instance could not be restarted."""


E = EndpointStatus

TRANSITIONS: TransitionTable[EndpointStatus] = TransitionTable(
    {
        E.CREATING: {
            E.IN_SERVICE: "every instance of every variant answered /ping",
            E.FAILED: "an instance could not start (model download, model_fn raised, timeout)",
            E.DELETING: "deleted while still starting",
        },
        E.IN_SERVICE: {
            E.UPDATING: "UpdateEndpoint or UpdateEndpointWeightsAndCapacities",
            E.DELETING: "DeleteEndpoint",
        },
        E.UPDATING: {
            E.IN_SERVICE: "the new instances are ready and took the traffic",
            E.ROLLING_BACK: "the new configuration failed to start",
            E.DELETING: "deleted during an update",
        },
        E.ROLLING_BACK: {
            E.IN_SERVICE: "the failed instances are stopped; the old ones serve (again)",
            E.UPDATE_ROLLBACK_FAILED: "an old instance stopped by a rolling update did not return",
            E.DELETING: "deleted during a rollback",
        },
        E.UPDATE_ROLLBACK_FAILED: {
            E.UPDATING: "UpdateEndpoint: a new configuration may repair it",
            E.DELETING: "DeleteEndpoint",
        },
        E.FAILED: {
            E.DELETING: "DeleteEndpoint: a failed endpoint can only be deleted",
        },
        E.DELETING: {},
    }
)
