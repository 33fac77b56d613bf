"""``PortBook``: the preferred port when free and nobody's, else a free one; one list per job."""

from __future__ import annotations

import socket

from sageport.scheduler.ports import PortBook, any_free_port, free_port, port_free


def test_the_preferred_port_when_free_and_the_same_for_every_host() -> None:
    book = PortBook(free=lambda port: True, pick=iter(range(40000, 40100)).__next__)
    assert book.reserve("a", [7777]) == [7777]
    assert book.reserve("a", [7777]) == [7777]  # algo-2 asks again: the same answer


def test_a_port_another_job_holds_is_not_given_twice() -> None:
    book = PortBook(free=lambda port: True, pick=iter(range(40000, 40100)).__next__)
    assert book.reserve("a", [7777]) == [7777]
    assert book.reserve("b", [7777]) == [40000]
    book.release("a")
    assert book.reserve("c", [7777]) == [7777]


def test_each_worker_gets_its_own_port() -> None:
    book = PortBook(free=lambda port: port != 8891, pick=iter([8890, 41000]).__next__)
    # 8891 is taken on this machine; the first pick (8890) is already this job's
    assert book.reserve("tf", [8890, 8891]) == [8890, 41000]


def test_a_port_something_listens_on_is_not_free() -> None:
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        assert not port_free(busy)
        book = PortBook()
        (got,) = book.reserve("job", [busy])
        assert got != busy
        assert port_free(got)
    assert any_free_port() > 0
    assert free_port() > 0
