"""Run the real pipeline stages in a throwaway project folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "UMNIST_MLFLOW": "off"}

# Small enough for CI: 1,000 mnist5k images (720 train / 80 val / 200 test), one or two epochs.
TINY = {"data.subset_fraction": 0.2}


def params_with(overrides: dict[str, Any]) -> dict[str, Any]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[leaf] = value
    return params


def write_params(folder: Path, overrides: dict[str, Any] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params_with({**TINY, **(overrides or {})}), sort_keys=False))


def run_stage(folder: Path, stage: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run pipeline/<stage>.py with `folder` as the working directory, as DVC would."""
    result = subprocess.run(
        [sys.executable, str(REPO / "pipeline" / f"{stage}.py"), *args],
        cwd=folder, env=ENV, capture_output=True, text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"stage {stage} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def copy_repo(dest: Path) -> Path:
    """A fresh git repository holding the project's tracked and untracked-but-not-ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "copy")
    return dest


def git(folder: Path, *args: str) -> str:
    env = {**ENV, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=folder, env=env, capture_output=True, text=True, check=True).stdout


def dvc(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    env = {**ENV, "PATH": bin_dir + os.pathsep + ENV.get("PATH", "")}
    result = subprocess.run([str(Path(bin_dir) / "dvc"), *args], cwd=folder, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
