"""Endpoints, as the API sees them: create, describe, list, update, delete.

The spec is the CreateEndpoint request; the runtime state (``extra``) holds the serving
configuration, its instances (model-server processes) and any pending update. The endpoint
runner (``sageport.scheduler.endpoints``) does the work; this module decides what is
allowed and assembles Describe. Messages follow real SageMaker ("Could not find endpoint",
"Cannot create already existing endpoint", "Cannot update in-progress endpoint").
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from sageport.clock import Clock
from sageport.domain.arns import sagemaker_arn
from sageport.domain.endpoint import TRANSITIONS, EndpointStatus
from sageport.domain.status import IllegalTransition
from sageport.errors import ValidationException
from sageport.services import listing
from sageport.services.admission import Admission, host_request
from sageport.services.endpoint_configs import EndpointConfigService
from sageport.services.tags import tag_pairs
from sageport.settings import Settings
from sageport.store import resources, tags
from sageport.store.database import Database
from sageport.store.errors import DuplicateName, StatusConflict
from sageport.store.resources import Resource

KIND = "Endpoint"
ARN_TYPE = "endpoint"
E = EndpointStatus


class EndpointService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        configs: EndpointConfigService,
        admission: Admission,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._configs = configs
        self._admission = admission
        self.wake = wake

    def arn(self, name: str) -> str:
        return sagemaker_arn(self._settings.region, self._settings.account_id, ARN_TYPE, name)

    def not_found(self, name: str) -> ValidationException:
        return ValidationException(f'Could not find endpoint "{self.arn(name)}".')

    def _check_config(self, config_name: str) -> Resource:
        config = self._configs.get(config_name)
        for variant in config.spec.get("ProductionVariants", []):
            itype = variant.get("InstanceType")
            if not itype:
                raise ValidationException(
                    f"Variant {variant['VariantName']}: serverless variants are not supported by "
                    "sageport; give InstanceType and InitialInstanceCount."
                )
            self._admission.check_hosts(
                [host_request(self._admission.catalog, itype)]
                * int(variant.get("InitialInstanceCount", 1))
            )
        return config

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        arn = self.arn(name)
        self._check_config(params["EndpointConfigName"])
        spec = {k: v for k, v in params.items() if k != "Tags"}
        try:
            with self._db.begin() as conn:
                resources.create(
                    conn,
                    kind=KIND,
                    name=name,
                    arn=arn,
                    spec=spec,
                    now=self._clock.now(),
                    status=E.CREATING,
                    status_message="Starting model servers",
                    extra={"config": params["EndpointConfigName"], "generation": 0},
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
        with self._db.read() as conn:
            rows = resources.list_resources(conn, KIND, flt)
        items, token = listing.page(rows, flt, _summary)
        out: dict[str, Any] = {"Endpoints": items}
        if token:
            out["NextToken"] = token
        return out

    def update(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        endpoint = self.get(name)
        if endpoint.status != E.IN_SERVICE:
            raise ValidationException(
                f'Cannot update in-progress endpoint "{endpoint.arn}".'
                if endpoint.status in (E.CREATING, E.UPDATING, E.ROLLING_BACK)
                else f"Cannot update endpoint {name}: it is {endpoint.status}."
            )
        self._check_config(params["EndpointConfigName"])
        self.move(
            name,
            E.IN_SERVICE,
            E.UPDATING,
            "Starting the new configuration's model servers",
            {"pending": {"config": params["EndpointConfigName"]}, "failure_reason": None},
        )
        self.wake()
        return {"EndpointArn": endpoint.arn}

    def update_weights(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        endpoint = self.get(name)
        if endpoint.status != E.IN_SERVICE:
            raise ValidationException(f'Cannot update in-progress endpoint "{endpoint.arn}".')
        known = {
            v["VariantName"]
            for v in self._configs.get(endpoint.extra["config"]).spec["ProductionVariants"]
        }
        weights = dict(endpoint.extra.get("weights") or {})
        counts = dict(endpoint.extra.get("counts") or {})
        for item in params["DesiredWeightsAndCapacities"]:
            variant = item["VariantName"]
            if variant not in known:
                raise ValidationException(
                    f"The variant name {variant} is not present in endpoint {name}."
                )
            if "DesiredWeight" in item:
                weights[variant] = float(item["DesiredWeight"])
            if "DesiredInstanceCount" in item:
                counts[variant] = int(item["DesiredInstanceCount"])
        if counts != (endpoint.extra.get("counts") or {}):
            self.move(
                name,
                E.IN_SERVICE,
                E.UPDATING,
                "Changing instance counts",
                {
                    "weights": weights,
                    "pending": {"config": endpoint.extra["config"], "counts": counts},
                },
            )
        else:
            self.set_extra(name, {"weights": weights})
        self.wake()
        return {"EndpointArn": endpoint.arn}

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        endpoint = self.get(name)
        if endpoint.status == E.DELETING:
            return {}
        try:
            self.move(name, status_of(endpoint), E.DELETING, "Stopping model servers")
        except (StatusConflict, ValidationException):
            return self.delete(params)  # it moved meanwhile; try again from where it is now
        self.wake()
        return {}

    # -- used by the runner ---------------------------------------------------------------

    def move(
        self,
        name: str,
        old: EndpointStatus,
        new: EndpointStatus,
        message: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        try:
            TRANSITIONS.check(old, new)
        except IllegalTransition as exc:
            raise ValidationException(str(exc)) from None
        now = self._clock.now()
        with self._db.begin() as conn:
            resources.set_status(conn, KIND, name, old.value, new.value, message=message, now=now)
            if extra:
                resources.update_extra(conn, KIND, name, extra, now)

    def set_extra(self, name: str, changes: dict[str, Any]) -> None:
        with self._db.begin() as conn:
            resources.update_extra(conn, KIND, name, changes, self._clock.now())

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


def status_of(endpoint: Resource) -> EndpointStatus:
    """An endpoint's status; every endpoint has one from the moment it is created."""
    if endpoint.status is None:
        raise ValueError(f"endpoint {endpoint.name} has no status")
    return EndpointStatus(endpoint.status)


def _summary(endpoint: Resource) -> dict[str, Any]:
    return {
        "EndpointName": endpoint.name,
        "EndpointArn": endpoint.arn,
        "CreationTime": endpoint.created_at,
        "LastModifiedTime": endpoint.modified_at,
        "EndpointStatus": endpoint.status,
    }


def describe_endpoint(endpoint: Resource, configs: EndpointConfigService) -> dict[str, Any]:
    extra = endpoint.extra
    out: dict[str, Any] = {
        **endpoint.spec,
        **_summary(endpoint),
        "EndpointConfigName": extra.get("config", endpoint.spec["EndpointConfigName"]),
    }
    if extra.get("failure_reason"):
        out["FailureReason"] = extra["failure_reason"]
    try:
        config = configs.get(out["EndpointConfigName"])
    except ValidationException:
        return out  # the config was deleted; SageMaker still describes the endpoint
    replicas = extra.get("replicas") or []
    weights = extra.get("weights") or {}
    counts = extra.get("counts") or {}
    notes = extra.get("variant_notes") or {}
    variants = []
    for v in config.spec.get("ProductionVariants", []):
        vname = v["VariantName"]
        live = [r for r in replicas if r["variant"] == vname and r.get("ready")]
        summary: dict[str, Any] = {
            "VariantName": vname,
            "CurrentWeight": float(weights.get(vname, v.get("InitialVariantWeight", 1.0))),
            "DesiredWeight": float(weights.get(vname, v.get("InitialVariantWeight", 1.0))),
            "CurrentInstanceCount": len(live),
            "DesiredInstanceCount": int(counts.get(vname, v.get("InitialInstanceCount", 1))),
        }
        images = extra.get("images", {}).get(vname)
        if images:
            summary["DeployedImages"] = [{"SpecifiedImage": i, "ResolvedImage": i} for i in images]
        if vname in notes:
            summary["VariantStatus"] = [notes[vname]]
        variants.append(summary)
    if endpoint.status != E.CREATING or replicas:
        out["ProductionVariants"] = variants
    return out
