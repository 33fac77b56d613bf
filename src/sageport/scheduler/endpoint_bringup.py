"""Bringing instances up: start their model servers, then wait until each answers /ping.

Readiness (:meth:`BringUp.wait_ready`) is SageMaker's container startup health check:
``/ping`` must answer 200 within the variant's ``ContainerStartupHealthCheckTimeoutInSeconds``
(default 4 minutes), a deadline read from the injected ``Clock``. A model server whose model
failed to load answers 500 with the traceback: that fails the bring-up at once, with the
traceback's tail as FailureReason; one that exits first fails it with its log's tail.
"""

from __future__ import annotations

import asyncio

from sageport.clock import Clock
from sageport.domain.runtime import EndpointInstance, ReplicaSlot
from sageport.scheduler.allocator import HostGrant
from sageport.scheduler.endpoint_instances import (
    Abandoned,
    BringUpFailed,
    Instances,
    Item,
    check_alive,
    describe_exit,
    fit_reason,
    instance_id,
    log_group,
)
from sageport.scheduler.endpoint_placement import Placement
from sageport.scheduler.records import EndpointRecords
from sageport.serving.config import LOAD_FAILED_EXIT
from sageport.store.errors import NotFound


class BringUp:
    """Starts instances whose grants are held and waits for their first /ping 200."""

    def __init__(
        self,
        records: EndpointRecords,
        instances: Instances,
        placement: Placement,
        clock: Clock,
    ) -> None:
        self.records = records
        self.instances = instances
        self.placement = placement
        self.clock = clock
        self._deadlines: dict[str, float] = {}
        """Instance id → when its startup health check runs out (``clock.monotonic``)."""

    async def start_replicas(
        self,
        name: str,
        items: list[Item],
        generation: int,
        grants: list[HostGrant],
        slot: ReplicaSlot,
        existing: list[EndpointInstance] | None = None,
    ) -> list[EndpointInstance]:
        """Start one model server per item (their grants already held); store them in ``slot``.

        Returns ``existing`` plus the new ones. On failure the new ones are stopped and every
        grant given here is released.
        """
        started = list(existing or [])
        new: list[EndpointInstance] = []
        arn = self.records.get(name).arn
        try:
            for (variant, index), grant in zip(items, grants, strict=True):
                r = await self.instances.start(name, variant, index, generation, grant, arn)
                r.owner = self.placement.owner(name, r.id)
                self._deadlines[r.id] = self.clock.monotonic() + r.startup_timeout_s
                new.append(r)
                self._store(name, slot, started + new)
        except BaseException:
            self.instances.stop(new, kill=True)
            for (variant, index), _ in zip(items, grants, strict=True):
                rid = instance_id(generation, variant, index)
                self.placement.release_owner(self.placement.owner(name, rid))
            raise
        return started + new

    def _store(self, name: str, slot: ReplicaSlot, replicas: list[EndpointInstance]) -> None:
        self.records.update_runtime(name, lambda rt: rt.with_slot(slot, replicas))

    async def wait_ready(
        self, name: str, replicas: list[EndpointInstance], slot: ReplicaSlot
    ) -> None:
        """Until every replica answers /ping 200; BringUpFailed with the reason otherwise."""
        while True:
            self.instances.ship(name, replicas)
            pending = [r for r in replicas if not r.ready]
            if not pending:
                return
            for r in pending:
                exit_info = self.instances.poll(r)
                if exit_info is not None:
                    self.instances.ship(name, replicas)
                    what = (
                        "could not load the model"
                        if exit_info.returncode == LOAD_FAILED_EXIT
                        else f"exited ({describe_exit(exit_info)})"
                    )
                    tail = self.instances.tail(name, r)
                    # an import that failed names the interpreter before the log tail
                    note = self.instances.import_note(r, tail)
                    log_at = f"Log: {log_group(name)}." + (f"\n{note}\n" if note else " ")
                    raise BringUpFailed(
                        fit_reason(
                            f"The model server of production variant {r.variant} (instance "
                            f"{r.id}) {what} before passing the ping health check. "
                            f"{log_at}Last lines:",
                            "\n".join(tail),
                        )
                    )
                ping = await self.instances.ping(r)
                if ping.status == 200:
                    r.ready = True
                    self._deadlines.pop(r.id, None)
                elif ping.status == 500:
                    self.instances.ship(name, replicas)
                    detail = ping.body.split("\n", 1)[-1] if "\n" in ping.body else ping.body
                    note = self.instances.import_note(r, detail.splitlines())
                    raise BringUpFailed(
                        fit_reason(
                            f"The primary container for production variant {r.variant} did not "
                            f"pass the ping health check: the model failed to load (instance "
                            f"{r.id}; log: {log_group(name)})." + (f"\n{note}" if note else ""),
                            detail,
                        )
                    )
                elif self.clock.monotonic() > self._deadlines.setdefault(
                    r.id, self.clock.monotonic() + (r.startup_timeout_s or 240.0)
                ):
                    raise BringUpFailed(
                        fit_reason(
                            f"The primary container for production variant {r.variant} did not "
                            f"pass the ping health check within {r.startup_timeout_s} s "
                            f"(ContainerStartupHealthCheckTimeoutInSeconds; instance {r.id}). "
                            "Last log lines:",
                            "\n".join(self.instances.tail(name, r)),
                        )
                    )
            try:
                self.records.update_runtime(name, lambda rt: rt.with_slot(slot, replicas))
            except NotFound:
                raise Abandoned(name) from None
            check_alive(self.records, name)
            await asyncio.sleep(0.1)
