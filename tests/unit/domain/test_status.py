from __future__ import annotations

from enum import StrEnum

import pytest

from sageport.domain.status import IllegalTransition, TransitionTable


class Light(StrEnum):
    RED = "Red"
    GREEN = "Green"
    OFF = "Off"


TABLE: TransitionTable[Light] = TransitionTable(
    {
        Light.RED: {Light.GREEN: "timer", Light.OFF: "power cut"},
        Light.GREEN: {Light.RED: "timer"},
        Light.OFF: {},
    }
)


def test_allowed_moves_pass_and_carry_their_reason() -> None:
    TABLE.check(Light.RED, Light.GREEN)
    assert TABLE.can(Light.GREEN, Light.RED)
    assert TABLE.reason(Light.RED, Light.OFF) == "power cut"
    assert TABLE.allowed(Light.RED) == {Light.GREEN, Light.OFF}
    assert TABLE.statuses == set(Light)


def test_illegal_moves_are_refused() -> None:
    with pytest.raises(IllegalTransition, match="cannot move from Off to Red"):
        TABLE.check(Light.OFF, Light.RED)
    with pytest.raises(IllegalTransition):
        TABLE.check(Light.GREEN, Light.OFF)
    assert not TABLE.can(Light.RED, Light.RED)


def test_terminal_statuses() -> None:
    assert TABLE.is_terminal(Light.OFF)
    assert not TABLE.is_terminal(Light.RED)


def test_targets_must_have_rows() -> None:
    with pytest.raises(ValueError, match="without a row"):
        TransitionTable({Light.RED: {Light.GREEN: "timer"}})
