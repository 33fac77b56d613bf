"""Ports for the launchers of distributed jobs: torchrun's master, TensorFlow's workers.

On SageMaker every instance has an address of its own, so the containers use fixed ports
(7777 for PyTorch's master, 8890 for each TF worker). Here every host of every job shares this
machine's loopback: a fixed port taken by another job (or two jobs starting at once) would
connect one job's ranks to the other's. :class:`PortBook` hands out the preferred port when it
is free and no unfinished job of this server holds it, else a free one, and remembers the
choice until the job is released, so all hosts of one job get the same ports.

Every port this server picks comes from here: :func:`free_port` is the loopback port of an
endpoint's model server (and of a ``sageport serve`` child, ``cli.process``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence


def port_free(port: int) -> bool:
    """Whether something could listen on ``port`` on every interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def free_port() -> int:
    """A port free on the loopback interface right now (what the kernel picks)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PortBook:
    """The ports each unfinished job was given (``reserve``) until it ends (``release``)."""

    def __init__(
        self,
        free: Callable[[int], bool] = port_free,
        pick: Callable[[], int] = any_free_port,
    ) -> None:
        self._free = free
        self._pick = pick
        self._held: dict[str, list[int]] = {}

    def reserve(self, job: str, preferred: Sequence[int]) -> list[int]:
        """One port per ``preferred`` one: it, when free and held by no other job, else a
        free one. The same list again for the same job (every host asks)."""
        if job in self._held:
            return list(self._held[job])
        taken = {p for ports in self._held.values() for p in ports}
        chosen: list[int] = []
        for wanted in preferred:
            port = wanted
            while port in taken or port in chosen or not self._free(port):
                port = self._pick()
            chosen.append(port)
        self._held[job] = chosen
        return list(chosen)

    def release(self, job: str) -> None:
        self._held.pop(job, None)
