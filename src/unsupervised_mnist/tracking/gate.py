"""The quality gate behind the `champion` alias: a pure function, so every branch is testable."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GateRule:
    """What the gate of one model checks: its metric and which way is better (from the model's module), and the
    thresholds (register.<model> in params.yaml)."""

    metric: str
    goal: str  # "max" or "min"
    min_improvement: float
    floor: float


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(gate: GateRule, value: float, champion_value: float | None, champion_version: str | None,
           version: str) -> Decision:
    """Promote `version` (scoring `value` on `gate.metric`) over the current champion, or say why not."""
    better = (lambda a, b: a >= b) if gate.goal == "max" else (lambda a, b: a <= b)
    sign = 1.0 if gate.goal == "max" else -1.0
    bound = "at least" if gate.goal == "max" else "at most"
    if not math.isfinite(value):
        return Decision(False, f"{gate.metric} is {value}, not a finite number")
    if not better(value, gate.floor):
        return Decision(False, f"{gate.metric} {value:.4f} fails the floor: must be {bound} {gate.floor:g}")
    if champion_version is None or champion_value is None:
        return Decision(True, f"{gate.metric} {value:.4f} passes the floor ({gate.floor:g}) and there is no champion")
    if champion_version == version:
        return Decision(True, f"version {version} is already the champion ({gate.metric} {value:.4f})")
    gain = sign * (value - champion_value) + 0.0  # + 0.0: no "-0.0000" in the reason
    if gain >= gate.min_improvement:
        return Decision(True, f"{gate.metric} {value:.4f} beats champion v{champion_version} "
                              f"({champion_value:.4f}) by {gain:.4f} >= {gate.min_improvement:g}")
    return Decision(False, f"{gate.metric} {value:.4f} does not beat champion v{champion_version} "
                           f"({champion_value:.4f}) by {gate.min_improvement:g} (gain {gain:.4f})")
