"""Endpoints, as the API sees them: create, describe, list, update, delete.

The spec is the CreateEndpoint request; the runtime state (``domain.runtime.EndpointRuntime``) holds the serving
configuration, its instances (model-server processes) and any pending update. The endpoint
runner (``sageport.scheduler.endpoints``) does the work; this module decides what is
allowed and assembles Describe. Messages follow real SageMaker ("Could not find endpoint",
"Cannot create already existing endpoint", "Cannot update in-progress endpoint").
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sageport.clock import Clock
from sageport.domain.arns import sagemaker_arn
from sageport.domain.endpoint import TRANSITIONS, EndpointStatus
from sageport.domain.runtime import EndpointRuntime
from sageport.domain.status import IllegalTransition
from sageport.errors import ResourceLimitExceeded, ValidationException
from sageport.services import listing, quotas
from sageport.services.admission import Admission, host_request
from sageport.services.endpoint_configs import EndpointConfigService
from sageport.services.endpoint_views import (
    config_of,
    current_counts,
    describe_endpoint,
    endpoint_summary,
    instances_report,
)
from sageport.services.records import StatusRecords, update_state
from sageport.services.tags import tag_pairs
from sageport.settings import Settings
from sageport.store import resources, tags
from sageport.store.database import Connection, Database
from sageport.store.errors import DuplicateName, StatusConflict
from sageport.store.resources import Resource

__all__ = ["EndpointService", "config_of", "describe_endpoint", "instances_report", "status_of"]

KIND = "Endpoint"
ARN_TYPE = "endpoint"
E = EndpointStatus


class EndpointService(StatusRecords[EndpointStatus]):
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        configs: EndpointConfigService,
        admission: Admission,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(db, clock, KIND, TRANSITIONS)
        self._settings = settings
        self._configs = configs
        self._admission = admission
        self.wake = wake

    def arn(self, name: str) -> str:
        return sagemaker_arn(self._settings.region, self._settings.account_id, ARN_TYPE, name)

    def not_found(self, name: str) -> ValidationException:
        return ValidationException(f'Could not find endpoint "{self.arn(name)}".')

    def _check_config(self, config_name: str, counts: dict[str, int] | None = None) -> int:
        """How many model servers the config runs, if this machine can ever run all of them
        at once; else the reason.

        The instance quota comes first (``quotas``), so a huge count is refused before any
        per-instance record is built. Every instance of every variant is then checked
        together (two 4-GPU variants need 8 GPUs), so nothing is accepted that would wait
        forever; ``ResourceLimitExceeded``.
        """
        config = self._configs.get(config_name)
        variants = config.spec.get("ProductionVariants", [])
        wanted = quotas.variant_counts(variants, counts)
        quotas.check_endpoint_instances(self._settings, wanted)
        hosts = []
        for variant in variants:
            itype = variant.get("InstanceType")
            if not itype:
                raise ValidationException(
                    f"Variant {variant['VariantName']}: serverless variants are not supported by "
                    "sageport; give InstanceType and InitialInstanceCount."
                )
            hosts += [host_request(self._admission.catalog, itype)] * wanted[variant["VariantName"]]
        try:
            self._admission.check_hosts(hosts)
        except ResourceLimitExceeded as exc:
            reason = exc.message.replace("the job needs", "its instances need")
            raise ResourceLimitExceeded(
                f"Endpoint config {config_name} cannot be served on this machine "
                f"({len(hosts)} instance{'s' if len(hosts) > 1 else ''} at once): {reason}."
            ) from None
        return len(hosts)

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        arn = self.arn(name)
        instances = self._check_config(params["EndpointConfigName"])
        spec = {k: v for k, v in params.items() if k != "Tags"}
        try:
            with self._db.begin() as conn:
                quotas.check_endpoint_capacity(conn, self._settings, name, instances, new=True)
                resources.create(
                    conn,
                    kind=KIND,
                    name=name,
                    arn=arn,
                    spec=spec,
                    now=self._clock.now(),
                    status=E.CREATING,
                    status_message="Starting model servers",
                    state=EndpointRuntime(config=params["EndpointConfigName"]).to_json(),
                )
                tags.put(conn, arn, tag_pairs(params.get("Tags", [])))
        except DuplicateName:
            raise ValidationException(f'Cannot create already existing endpoint "{arn}".') from None
        self.wake()
        return {"EndpointArn": arn}

    def get(self, name: str) -> Resource:
        with self._db.read() as conn:
            found = resources.get(conn, KIND, name)
        if found is None:
            raise self.not_found(name)
        return found

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = self.get(params["EndpointName"])
        return describe_endpoint(endpoint, self._configs)

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        flt = listing.resource_filter(params)
        return listing.answer(self._db, KIND, flt, endpoint_summary, "Endpoints")

    def update(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        endpoint = self.get(name)
        status = status_of(endpoint)
        if status not in (E.IN_SERVICE, E.UPDATE_ROLLBACK_FAILED):
            raise ValidationException(
                f'Cannot update in-progress endpoint "{endpoint.arn}".'
                if status in (E.CREATING, E.UPDATING, E.ROLLING_BACK)
                else f"Cannot update endpoint {name}: it is {endpoint.status}."
            )
        self._configs.get(params["EndpointConfigName"])
        retain = bool(params.get("RetainAllVariantProperties"))
        counts = self._kept_counts(endpoint, params["EndpointConfigName"]) if retain else {}
        instances = self._check_config(params["EndpointConfigName"], counts)
        pending = {
            "config": params["EndpointConfigName"],
            "counts": counts,
            "retain": retain,
            "since": self._clock.now().isoformat(),
        }
        self.move(
            name,
            status,
            E.UPDATING,
            "Starting the new configuration's model servers",
            check=self._capacity(name, instances),
            runtime=lambda r: replace(r, pending=pending, failure_reason=None),
        )
        self.wake()
        return {"EndpointArn": endpoint.arn}

    def _capacity(self, name: str, instances: int) -> Callable[[Connection], None]:
        """The model-server quota for endpoint ``name`` moving to ``instances``, checked in
        the transaction that records the update."""

        def check(conn: Connection) -> None:
            quotas.check_endpoint_capacity(conn, self._settings, name, instances, new=False)

        return check

    def _kept_counts(self, endpoint: Resource, config_name: str) -> dict[str, int]:
        """RetainAllVariantProperties: the instance counts set by UpdateEndpointWeights..."""
        variants = {
            v["VariantName"] for v in self._configs.get(config_name).spec["ProductionVariants"]
        }
        counts = EndpointRuntime.from_json(endpoint.state).counts
        return {k: int(v) for k, v in counts.items() if k in variants}

    def update_weights(self, params: dict[str, Any]) -> dict[str, Any]:
        """New weights take effect at once (routes republished); new counts start or stop
        instances. Either way the endpoint is Updating until it is done, as in SageMaker."""
        name = params["EndpointName"]
        endpoint = self.get(name)
        if endpoint.status != E.IN_SERVICE:
            raise ValidationException(f'Cannot update in-progress endpoint "{endpoint.arn}".')
        config_name = config_of(endpoint)
        variants = self._configs.get(config_name).spec["ProductionVariants"]
        known = {v["VariantName"] for v in variants}
        weights: dict[str, float] = {}
        counts: dict[str, int] = {}
        for item in params["DesiredWeightsAndCapacities"]:
            variant = item["VariantName"]
            if variant not in known:
                raise ValidationException(
                    f"The variant name {variant} is not present in endpoint {name}."
                )
            if "DesiredWeight" in item:
                weights[variant] = float(item["DesiredWeight"])
            if "DesiredInstanceCount" in item:
                if int(item["DesiredInstanceCount"]) < 1:
                    raise ValidationException(
                        f"DesiredInstanceCount for variant {variant} must be at least 1 "
                        "(sageport keeps at least one instance per variant)."
                    )
                counts[variant] = int(item["DesiredInstanceCount"])
        current = current_counts(endpoint, variants)
        counts = {k: v for k, v in counts.items() if v != current.get(k)}
        instances = sum(current.values())
        if counts:
            instances = self._check_config(config_name, {**current, **counts})
        pending = {
            "config": config_name,
            "counts": counts,
            "weights": weights,
            "since": self._clock.now().isoformat(),
        }
        self.move(
            name,
            E.IN_SERVICE,
            E.UPDATING,
            "Changing instance counts" if counts else "Changing variant weights",
            check=self._capacity(name, instances) if counts else None,
            runtime=lambda r: replace(r, pending=pending),
        )
        self.wake()
        return {"EndpointArn": endpoint.arn}

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        endpoint = self.get(name)
        if endpoint.status == E.DELETING:
            return {}
        try:
            self.move(name, status_of(endpoint), E.DELETING, "Stopping model servers")
        except (StatusConflict, IllegalTransition):
            return self.delete(params)  # it moved meanwhile; try again from where it is now
        self.wake()
        return {}

    # -- used by the runner (and ``move``, from StatusRecords) -----------------------------

    @staticmethod
    def runtime(endpoint: Resource) -> EndpointRuntime:
        """The endpoint's typed runtime state, as stored with it."""
        return EndpointRuntime.from_json(endpoint.state)

    def update_runtime(
        self, name: str, change: Callable[[EndpointRuntime], EndpointRuntime]
    ) -> None:
        """Apply ``change`` to the stored runtime state (no status change; see
        ``records.update_state``: compare-and-set, re-applied after a lost race)."""
        update_state(
            self._db,
            self._clock,
            KIND,
            name,
            lambda stored: change(EndpointRuntime.from_json(stored)).to_json(),
        )

    def move(
        self,
        name: str,
        old: E,
        new: E,
        message: str | None = None,
        check: Callable[[Connection], None] | None = None,
        *,
        state: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        runtime: Callable[[EndpointRuntime], EndpointRuntime] | None = None,
    ) -> None:
        """``StatusRecords.move``; ``runtime`` changes the typed state in the same transaction."""
        if runtime is not None:
            change = runtime

            def state(stored: dict[str, Any]) -> dict[str, Any]:
                return change(EndpointRuntime.from_json(stored)).to_json()

        super().move(name, old, new, message, check, state=state)

    def remove(self, name: str) -> None:
        with self._db.begin() as conn:
            resources.delete_resource(conn, KIND, name)

    def all(self) -> builtins.list[Resource]:
        with self._db.read() as conn:
            return resources.list_resources(
                conn,
                KIND,
                resources.ResourceFilter(sort_by="creation_time", descending=False, limit=10_000),
            )

    def config(self, name: str) -> Resource:
        return self._configs.get(name)

    @staticmethod
    def status_of(endpoint: Resource) -> EndpointStatus:
        """:func:`status_of` (``scheduler.records.EndpointRecords`` asks for it)."""
        return status_of(endpoint)


def status_of(endpoint: Resource) -> EndpointStatus:
    """An endpoint's status; every endpoint has one from the moment it is created."""
    if endpoint.status is None:
        raise ValueError(f"endpoint {endpoint.name} has no status")
    return EndpointStatus(endpoint.status)
