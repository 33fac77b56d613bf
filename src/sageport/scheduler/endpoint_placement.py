"""Where an endpoint's instances run: their GPUs, held per instance, granted per group.

Allocation is per instance: each instance holds its own allocator entry (its ``owner``), so a
rolling update or a scale-in releases instances one by one. A group of instances is still
granted all at once or not at all (:meth:`Placement.allocate`: one all-or-nothing
``try_allocate``, then the grants are re-registered per instance), and
:meth:`Placement.fits_without` asks the allocator whether a request would fit once some
instances are gone, without stopping them. While a bring-up waits for GPUs,
:meth:`Placement.queue` says why in DescribeEndpoint's VariantStatus.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sageport.catalog import Catalog
from sageport.catalog.hosts import host_request
from sageport.clock import Clock
from sageport.domain.hosts import HostRequest
from sageport.domain.runtime import EndpointInstance, EndpointRuntime
from sageport.scheduler.allocator import Allocator, HostGrant
from sageport.scheduler.endpoint_instances import check_alive
from sageport.scheduler.records import EndpointRecords


class Placement:
    """The allocator as the endpoint steps use it, and the endpoint's queue note."""

    def __init__(
        self, records: EndpointRecords, allocator: Allocator, catalog: Catalog, clock: Clock
    ) -> None:
        self.records = records
        self.allocator = allocator
        self.catalog = catalog
        self.clock = clock

    @staticmethod
    def owner(endpoint: str, rid: str) -> str:
        """The allocator holding of instance ``rid`` of ``endpoint``."""
        return f"endpoint/{endpoint}/{rid}"

    def request_of(self, instance_type: str) -> HostRequest:
        return host_request(self.catalog, instance_type)

    def allocate(self, owners: list[str], requests: list[HostRequest]) -> list[HostGrant] | None:
        """All of ``requests`` at once, each held under its own owner; or None."""
        group = f"endpoint-group/{uuid.uuid4().hex}"
        grants = self.allocator.try_allocate(group, requests)
        if grants is None:
            return None
        self.allocator.release(group)
        for owner, grant in zip(owners, grants, strict=True):
            self.allocator.restore(owner, [grant.to_json()])
        return grants

    def fits_without(
        self, replicas: Sequence[EndpointInstance], requests: list[HostRequest]
    ) -> bool:
        """Whether ``requests`` would be granted if ``replicas`` released what they hold.

        Asked of the allocator itself (release, try, restore — no await in between, so no
        other step sees the intermediate state), so GPU matching and CPU/memory count too.
        """
        held = {r.owner: [r.grant] for r in replicas if r.owner}
        for owner in held:
            self.allocator.release(owner)
        probe = f"endpoint-probe/{uuid.uuid4().hex}"
        try:
            return self.allocator.try_allocate(probe, requests) is not None
        finally:
            self.allocator.release(probe)
            for owner, grants in held.items():
                self.allocator.restore(owner, grants)

    def fits_now(self, requests: list[HostRequest]) -> bool:
        probe = f"endpoint-probe/{uuid.uuid4().hex}"
        fits = self.allocator.try_allocate(probe, requests) is not None
        self.allocator.release(probe)
        return fits

    def release(self, replicas: Sequence[EndpointInstance]) -> None:
        for owner in {r.owner for r in replicas if r.owner}:
            self.allocator.release(owner)

    def release_owner(self, owner: str) -> None:
        self.allocator.release(owner)

    def restore(self, replicas: Sequence[EndpointInstance]) -> None:
        """After a server restart: re-register what ``replicas`` hold, unless already held."""
        holders = self.allocator.holders()
        by_owner: dict[str, list[dict[str, Any]]] = {}
        for r in replicas:
            by_owner.setdefault(r.owner, []).append(r.grant)
        for owner, grants in by_owner.items():
            if owner not in holders:
                self.allocator.restore(owner, grants)

    def free_gpus(self) -> int:
        return len(self.allocator.free_gpus())

    def waiting_for(self, requests: list[HostRequest]) -> str:
        return self.allocator.waiting_for(requests)

    async def wait_for_grants(
        self, name: str, owners: list[str], requests: list[HostRequest]
    ) -> list[HostGrant]:
        """Grants for ``requests``, waiting (with the reason in DescribeEndpoint) if need be."""
        while True:
            grants = self.allocate(owners, requests)
            if grants is not None:
                self.queue(name, None)
                return grants
            self.queue(name, self.allocator.waiting_for(requests))
            await asyncio.sleep(0.5)
            check_alive(self.records, name)

    def queue(self, name: str, message: str | None) -> None:
        """What the endpoint waits for, shown in DescribeEndpoint's VariantStatus."""
        ep = self.records.get(name)
        old = EndpointRuntime.from_json(ep.state).queue_message or {}
        if message is None:
            if old:
                self.records.update_runtime(name, lambda r: replace(r, queue_message=None))
        elif old.get("message") != message:
            note = {"message": message, "since": self.clock.now().isoformat()}
            self.records.update_runtime(name, lambda r: replace(r, queue_message=note))
