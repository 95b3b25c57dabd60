"""The registry of trainable models (timm's pattern at our size): each model module ends with one
`register(ModelSpec(...))`, and everything else asks here, by the name params.yaml's `models` lists.

A spec says what the rest of the project needs from a model and nothing more: the network and the part of
params.yaml that builds it, the objective that trains it, the rules of its params section, and the metric its
quality gate reads. What a model can do beyond `encode`/`decode` (sample, bound a likelihood, give a second
code, export itself) are methods of the network, asked for by capability, never by name."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from unsupervised_mnist import config
from unsupervised_mnist.config import PARAMS_FILE, Params, Rule, Section
from unsupervised_mnist.errors import ParamsError


@dataclass(frozen=True)
class Gate:
    """The quality gate's metric (a key of reports/eval/<model>.json) and which way is better; its
    thresholds are params (register.<model>.min_improvement, .floor)."""

    metric: str
    goal: str  # "max" or "min"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    network: type[nn.Module]
    rules: dict[str, Rule]  # its params section, keys relative to it (config.TRAINING and its own)
    config: Callable[[Params, Section], dict[str, Any]]  # the architecture part of its params: network(**config)
    objective: type  # models.objective.Objective subclass: objective(model, params, section, device)
    gate: Gate
    # What the rules cannot say, across sections: check(params.yaml as a plain mapping, the model's name) raises
    # ParamsError. A plain mapping: checking is no read of a stage (config.Params.reads).
    check: Callable[[dict[str, Any], str], None] | None = None


_SPECS: dict[str, ModelSpec] = {}
_DISCOVERED: list[bool] = []


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _SPECS and _SPECS[spec.name] is not spec:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _SPECS[spec.name] = spec
    return spec


def registered() -> dict[str, ModelSpec]:
    """Every model of this package, by name: each module is imported once, and registers itself."""
    if not _DISCOVERED:
        package = importlib.import_module(__package__)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            importlib.import_module(f"{__package__}.{info.name}")
        _DISCOVERED.append(True)
    return dict(_SPECS)


def spec(name: str) -> ModelSpec:
    specs = registered()
    if name not in specs:
        raise ParamsError(f"params.yaml: {name!r} is not a registered model (registered: {', '.join(specs)})")
    return specs[name]


def model_rules() -> dict[str, dict[str, Rule]]:
    """Each registered model's section rules: what config.parse_params checks its sections against."""
    return {name: s.rules for name, s in registered().items()}


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """params.yaml with every section checked, each model's against its own rules and checks."""
    return _checked(config.load_params(path, model_rules()))


def parse_params(mapping: Any, origin: str = PARAMS_FILE) -> Params:
    """The same from a mapping (tests, benchmarks, scripts that change values before they run anything)."""
    return _checked(config.parse_params(mapping, origin, model_rules()))


def _checked(params: Params) -> Params:
    values = params.to_dict()
    for name in values["models"]:
        model_spec = spec(name)
        if model_spec.check is not None:
            model_spec.check(values, name)
    return params


def build(name: str, params: Params) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh network for `name` from params, and the config it was built from (saved with its weights)."""
    model_spec = spec(name)
    architecture = model_spec.config(params, params.model(name))
    return model_spec.network(**architecture), architecture
