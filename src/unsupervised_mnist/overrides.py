"""`key=value` changes to a params mapping, the form of `dvc exp run -S`: one parser for scripts/set_params.py
and the benchmarks."""

from __future__ import annotations

import math
from typing import Any

from unsupervised_mnist.errors import ParamsError


def set_overrides(mapping: Any, assignments: list[str], origin: str = "params.yaml") -> Any:
    """Apply the assignments in place to a params mapping (a plain dict, or ruamel's comment-keeping one) and
    return it. Values are read as YAML (3 -> int, 0.5 -> float, [1, 2] -> list); only existing keys can be set."""
    import yaml

    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        *parents, leaf = key.split(".")
        node = mapping
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not sep or not key or not isinstance(node, dict) or leaf not in node:
            raise ParamsError(f"override {assignment!r}: expected key=value with a key of {origin}, e.g. ae.epochs=30")
        value = yaml.safe_load(raw)
        # YAML 1.1 reads 1e-3 as text where DVC's YAML 1.2 reads a number: take the number.
        node[leaf] = float(value) if isinstance(value, str) and _finite_number(value) else value
    return mapping


def _finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
