"""params.yaml -> validated, read-only params: `params.ae.lr`, `params.register.gan.floor`.

params.yaml holds every knob and says what each does; no defaults in code. RULES gives each shared key its type
and the values it may take; each model's section is checked against the rules its own module registers
(models/registry.py), handed in as `model_rules`. `parse_params` stops at the first bad key with one line:
`params.yaml: noise.kind='gauss' is not one of gaussian, salt_pepper, mask`.

Params remember which keys were read (`reads()`): what a stage's outputs can depend on, which dvc.yaml must list
(tests/test_lineage.py). Hashing and logging every value (`to_dict`) is not a read: run identity, not lineage."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unsupervised_mnist.errors import ParamsError

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class Rule:
    type: type  # int, float, str, bool, or list (of int)
    allowed: tuple[str, ...] = ()  # for str: the only values allowed (empty: any non-empty text)
    low: float | None = None
    high: float | None = None
    open: str = ""  # "(", ")" or "()": the bounds left out of the range
    nullable: bool = False


def one_of(*allowed: str) -> Rule:
    return Rule(str, allowed)


def between(tp: type, low: float, high: float, open: str = "", nullable: bool = False) -> Rule:
    return Rule(tp, (), low, high, open, nullable)


EPOCHS, COUNT, RATE = between(int, 1, 100000), between(int, 0, 100000), between(float, 0.0, 1.0, "(")
AUGMENT = {"augment.shift": between(float, 0.0, 14.0), "augment.rotate": between(float, 0.0, 180.0)}
TRAINING = {  # every model the engine trains (a model's own rules add these)
    "batch_size": between(int, 1, 65536, nullable=True), "epochs": EPOCHS, "lr": RATE,
    "schedule": one_of("constant", "cosine"), "warmup_epochs": COUNT, **AUGMENT}
GATE = {"min_improvement": between(float, 0.0, 1e12), "floor": Rule(float)}  # per model: register.<model>.*


def section(name: str, *groups: dict[str, Rule]) -> dict[str, Rule]:
    return {f"{name}.{key}": rule for group in groups for key, rule in group.items()}


RULES: dict[str, Rule] = {
    "seed": between(int, 0, 2**31 - 1), "latent_dim": between(int, 1, 4096),
    **section("data", {"source": one_of("mnist5k", "mnist", "fashion-mnist", "idx"),
                       "path": Rule(str, nullable=True), "url": Rule(str, nullable=True),
                       "test_fraction": between(float, 0.0, 1.0, "()"), "val_fraction": between(float, 0.0, 1.0, "()"),
                       "subset_fraction": RATE}),
    **section("noise", {"kind": one_of("gaussian", "salt_pepper", "mask"), "level": between(float, 0.0, 1.0)}),
    **section("train", {"device": one_of("auto", "cpu", "cuda"), "compile": Rule(bool),
                        "precision": one_of("auto", "fp32", "bf16"), "batch_size": between(int, 1, 65536),
                        "threads": between(int, 0, 1024), "nproc_per_node": between(int, 1, 1024)}),
    **section("classifier", {"channels": between(list, 1, 4096), "dropout": between(float, 0.0, 1.0, ")"),
                             "epochs": EPOCHS, "lr": RATE, "weight_decay": between(float, 0.0, 1.0), **AUGMENT}),
    **section("evaluate", {"kmeans_inits": between(int, 1, 1000), "manifold": one_of("none", "umap"),
                           "manifold_clusterer": one_of("kmeans", "gmm"), "umap_components": between(int, 1, 100),
                           "umap_neighbors": between(int, 2, 1000), "umap_epochs": EPOCHS,
                           "iwae_k": EPOCHS, "n_samples": between(int, 2, 1000000)}),
    **section("mlflow", {"enabled": Rule(bool), "experiment": Rule(str), "model_prefix": Rule(str),
                         "system_metrics": Rule(bool)}),
}


class Section:
    """A section of params.yaml, read-only, its keys as attributes (`params.ae.dec.epochs`)."""

    def __init__(self, values: dict[str, Any], path: str = "", reads: set[str] | None = None):
        reads = set() if reads is None else reads
        object.__setattr__(self, "_reads", reads)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_values", {k: Section(v, f"{path}{k}.", reads) if isinstance(v, dict) else v
                                             for k, v in values.items()})

    def __getattr__(self, key: str) -> Any:
        try:
            value = self._values[key]
        except KeyError:
            raise AttributeError(key) from None
        if not isinstance(value, Section):
            self._reads.add(self._path + key)
        return value

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"params are read-only: change params.yaml, not {key}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def key(self, name: str) -> str:
        """The dotted key of `name` in this section, as params.yaml spells it (`ae.dec.init`): for messages."""
        return self._path + name

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() if isinstance(v, Section) else v for k, v in self._values.items()}


class Params(Section):
    def model(self, name: str) -> Section:
        """The section of model `name` (one of `models`)."""
        return getattr(self, name)

    def reads(self) -> set[str]:
        """Every key read so far, dotted (`train.precision`)."""
        return set(self._reads)

    def _hash(self, *sections: str) -> str:
        wanted = {name: self.to_dict()[name] for name in sections}
        return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]

    def params_hash(self) -> str:
        """All of params.yaml: the `params_hash` tag of every MLflow run."""
        return self._hash(*self.to_dict())

    def model_hash(self, name: str) -> str:
        """What shapes the trained model `name`: its checkpoint's key and part of a registered version's identity."""
        return self._hash("seed", "latent_dim", "data", "noise", "train", name)


# ---------------------------------------------------------------- checking
def _flatten(node: Any, prefix: str, origin: str, rules: Mapping[str, Rule]) -> dict[str, Any]:
    """Dotted key -> value, refusing unknown keys and sections that are not mappings."""
    if not isinstance(node, dict):
        where = f"{prefix[:-1]} must be a mapping, got {node!r}" if prefix else "expected a mapping at the top level"
        raise ParamsError(f"{origin}: {where}")
    flat, allowed = {}, list(dict.fromkeys(k[len(prefix):].split(".")[0] for k in rules if k.startswith(prefix)))
    for key, value in node.items():
        if key not in allowed:
            raise ParamsError(f"{origin}: unknown key {prefix}{key} (allowed: {', '.join(allowed)})")
        is_leaf = f"{prefix}{key}" in rules
        flat |= {f"{prefix}{key}": value} if is_leaf else _flatten(value, f"{prefix}{key}.", origin, rules)
    return flat


def _checked(key: str, value: Any, rule: Rule, origin: str) -> Any:
    """`value` in the rule's type, or one line naming the key, the value and what was expected."""
    def fail(why: str) -> ParamsError:
        return ParamsError(f"{origin}: {key}={value!r} {why}")

    if value is None and rule.nullable:
        return None
    if rule.type is list:
        if not isinstance(value, list) or not value or not all(_is(v, int) for v in value):
            raise fail("must be a non-empty list of int")
    elif not _is(value, rule.type):
        raise fail(f"must be of type {rule.type.__name__}")
    value = float(value) if rule.type is float else value
    items = value if rule.type is list else [value]
    if rule.type is float and not math.isfinite(value):  # nan slips through every range check; inf is never meant
        raise fail("must be a finite number")
    if rule.type is str and (value not in rule.allowed if rule.allowed else not value.strip()):
        raise fail(f"is not one of {', '.join(rule.allowed)}" if rule.allowed else "must not be empty")
    low, high = rule.low, rule.high  # floats for float keys: the message shows them as the file's type
    if low is not None and any((v <= low if "(" in rule.open else v < low) or
                               (v >= high if ")" in rule.open else v > high) for v in items):
        raise fail(f"is out of range, expected {'([' ['(' not in rule.open]}{low}, {high}{')]' [')' not in rule.open]}")
    if key.endswith(".channels") and len(value) != 2:
        raise fail("must have 2 entries (one per convolution stage)")
    return value


def _is(value: Any, tp: type) -> bool:
    """isinstance, as YAML values are meant: an int is also a float, and a bool is no number."""
    return tp is bool if isinstance(value, bool) else isinstance(value, (int, float) if tp is float else tp)


def _model_names(mapping: dict, origin: str, known: Mapping[str, Any] | None) -> list[str]:
    """`models`: the trained models, each a registered one (when the registry's rules are at hand)."""
    names = mapping.get("models")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names) \
            or len(set(names)) != len(names):
        raise ParamsError(f"{origin}: models={names!r} must be a non-empty list of distinct model names")
    unknown = [n for n in names if known is not None and n not in known]
    if unknown:
        raise ParamsError(f"{origin}: models: {unknown[0]!r} is not a registered model (registered: "
                          f"{', '.join(known)})")
    return names


def _model_sections(mapping: dict, origin: str, model_rules: Mapping[str, dict[str, Rule]] | None
                    ) -> tuple[list[str], dict[str, Rule]]:
    """The listed models, and the rules of the model sections present: each listed model's section and quality
    gate (register.<model>) must be there; a registered model left out of `models` may keep its sections,
    checked all the same. Without `model_rules` (a stage that reads no model section) none is checked or kept."""
    names = _model_names(mapping, origin, model_rules)
    if model_rules is None:
        return names, {}
    gates = mapping.get("register") if isinstance(mapping.get("register"), dict) else {}
    present = [n for n in model_rules if n in names or n in mapping or n in gates]
    rules = {key: rule for name in present for key, rule in section(name, model_rules[name]).items()}
    return names, rules | section("register", *(section(name, GATE) for name in present))


def parse_params(mapping: Any, origin: str = PARAMS_FILE,
                 model_rules: Mapping[str, dict[str, Rule]] | None = None) -> Params:
    if not isinstance(mapping, dict):
        raise ParamsError(f"{origin}: expected a mapping at the top level")
    names, model_section_rules = _model_sections(mapping, origin, model_rules)
    rules = RULES | model_section_rules
    shared = {key.split(".")[0] for key in RULES}
    kept = {k: v for k, v in mapping.items() if k != "models" and (model_rules is not None or k in shared)}
    flat = _flatten(kept, "", origin, rules)
    for key in rules:
        if key not in flat:
            raise ParamsError(f"{origin}: {key} is missing")
    flat = {key: _checked(key, flat[key], rule, origin) for key, rule in rules.items()}
    if flat["data.source"] == "idx" and not flat["data.path"]:
        raise ParamsError(f"{origin}: data.path is required when data.source='idx' (a folder of IDX files)")
    tree: dict[str, Any] = {"models": list(names)}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return Params(tree)


def load_params(path: str | Path = PARAMS_FILE, model_rules: Mapping[str, dict[str, Rule]] | None = None) -> Params:
    import yaml

    path = Path(path)
    try:
        mapping = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_params(mapping, str(path), model_rules)
