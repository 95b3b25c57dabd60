"""Lineage: every stage's `deps` in dvc.yaml cover exactly the project modules its script imports
(transitively, lazy imports inside functions included; the model registry imports every module of its
package), so a code change reruns what it affects and nothing else; every param a stage reads is in its
`params`. Also: imports go down the layers, and pyproject.toml declares every third-party import."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers import REPO

PACKAGE = "unsupervised_mnist"
SRC = REPO / "src"
REGISTRY = SRC / PACKAGE / "models/registry.py"  # imports every module of its package (models register on import)


# ---------------------------------------------------------------- import closures
def imported_modules(path: Path) -> set[str]:
    """Dotted names of every module `path` imports, anywhere in the file (`from a import b` may name a
    submodule `a.b`: both candidates are returned and the caller keeps those that exist)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def module_file(name: str, src: Path = SRC) -> Path | None:
    base = src / name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def closure(script: Path, src: Path = SRC) -> set[Path]:
    """The project files `script` runs: itself, every project module it imports, transitively, and
    the packages' __init__.py files that importing them executes."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.name == REGISTRY.name and path.parent.name == REGISTRY.parent.name:
            todo += sorted(path.parent.glob("*.py"))
        for name in imported_modules(path):
            if name.split(".")[0] != PACKAGE:
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # a.b.c executes a/__init__, a/b/__init__, then a/b/c
                found = module_file(".".join(parts[:depth]), src)
                if found is not None:
                    todo.append(found)
    return seen


def stage_scripts(dvc_yaml: str, params: dict | None = None) -> dict[str, tuple[Path, list[str]]]:
    """stage name -> (its script, its deps), for every stage whose command is `python pipeline/X.py`; a foreach
    stage once per item (`${models}` from params.yaml)."""
    params = params or yaml.safe_load((REPO / "params.yaml").read_text())
    stages = {}
    for name, stage in yaml.safe_load(dvc_yaml)["stages"].items():
        body = stage.get("do", stage)
        items = stage.get("foreach")
        items = params[items[2:-1]] if isinstance(items, str) else items
        for item in items or [None]:
            resolved = yaml.safe_load(yaml.safe_dump(body).replace("${item}", str(item)))
            match = re.match(r"python (pipeline/\w+\.py)", resolved["cmd"])
            assert match, f"stage {name}: command {resolved['cmd']!r} does not run a pipeline/ script"
            deps = [d if isinstance(d, str) else next(iter(d)) for d in resolved.get("deps", [])]
            stages[f"{name}@{item}" if item else name] = (REPO / match.group(1), deps)
    return stages


def code_files(deps: list[str]) -> set[str]:
    """The project's Python files among `deps`, a folder standing for every file in it."""
    files = set()
    for dep in deps:
        if dep.startswith(("src/", "pipeline/")):
            path = REPO / dep
            files |= {str(p.relative_to(REPO)) for p in sorted(path.glob("*.py"))} if path.is_dir() else {dep}
    return files


def lineage_problems(dvc_yaml: str) -> list[str]:
    """One line per project file a stage runs but does not depend on, or depends on but never runs."""
    problems = []
    for name, (script, deps) in stage_scripts(dvc_yaml).items():
        covered = code_files(deps)
        runs = {str(p.relative_to(REPO)) for p in closure(script)}
        problems += [f"stage {name}: imports {path} but does not depend on it" for path in sorted(runs - covered)]
        problems += [f"stage {name}: depends on {path} but never imports it" for path in sorted(covered - runs)]
    return problems


def test_every_stage_depends_on_exactly_the_modules_it_imports():
    problems = lineage_problems((REPO / "dvc.yaml").read_text())
    assert not problems, "\n".join(problems)


def test_a_removed_dep_is_named():
    text = (REPO / "dvc.yaml").read_text()
    assert "      - src/unsupervised_mnist/seeding.py\n" in text
    problems = lineage_problems(text.replace("      - src/unsupervised_mnist/seeding.py\n", "", 1))
    assert problems == ["stage prepare: imports src/unsupervised_mnist/seeding.py but does not depend on it"]


def test_train_closure_reaches_the_low_layers():
    files = {str(p.relative_to(REPO)) for p in closure(REPO / "pipeline/train.py")}
    assert {"src/unsupervised_mnist/seeding.py", "src/unsupervised_mnist/config.py",
            "src/unsupervised_mnist/data/noise.py", "src/unsupervised_mnist/data/dataset.py",
            "src/unsupervised_mnist/io.py"} <= files


# ---------------------------------------------------------------- layers
LOWER = {"data": ("training", "evaluation", "tracking"), "models": ("training", "evaluation", "tracking"),
         "training": ("evaluation", "tracking"), "evaluation": ("tracking",)}


@pytest.mark.parametrize("layer", sorted(LOWER))
def test_imports_go_down_the_layers(layer):
    for path in sorted((SRC / PACKAGE / layer).rglob("*.py")):
        for name in imported_modules(path):
            parts = name.split(".")
            assert not (parts[0] == PACKAGE and len(parts) > 1 and parts[1] in LOWER[layer]), \
                f"{path.relative_to(REPO)} imports {name}: {layer} must not import {', '.join(LOWER[layer])}"


def test_no_private_torch_api():
    for path in sorted([*SRC.rglob("*.py"), *(REPO / "pipeline").glob("*.py")]):
        text = path.read_text()
        assert not re.search(r"torch(\.\w+)*\._[a-z]", text), f"{path.relative_to(REPO)} calls a private torch API"


# ---------------------------------------------------------------- declared dependencies
def third_party_imports() -> dict[str, set[str]]:
    """top-level module -> files importing it, over src/, pipeline/ and scripts/ (Python files)."""
    stdlib = set(sys.stdlib_module_names)
    found: dict[str, set[str]] = {}
    files = [*SRC.rglob("*.py"), *(REPO / "pipeline").glob("*.py"), *(REPO / "scripts").glob("*.py")]
    for path in files:
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top not in stdlib and top != PACKAGE and module_file(top) is None:
                found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    # `from a import b` also yields "a.b": keep only real top-level modules (their first part)
    return found


def declared_distributions() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *(r for extra in project.get("optional-dependencies", {}).values()
                                                 for r in extra)]
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


# Imports of optional extras that `make install` leaves out: their distribution, by name.
NOT_INSTALLED: dict[str, set[str]] = {}


def test_pyproject_declares_every_third_party_import():
    providers = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    missing = []
    for module, files in sorted(third_party_imports().items()):
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])} or NOT_INSTALLED.get(module, set())
        assert dists, f"{module} (imported by {sorted(files)}) is not installed"
        if not dists & declared:
            missing.append(f"{module} from {sorted(dists)} (imported by {', '.join(sorted(files))})")
    assert not missing, "not declared in pyproject.toml: " + "; ".join(missing)
