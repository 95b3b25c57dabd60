"""Run the real pipeline stages in a throwaway project folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from unsupervised_mnist.evaluation.baselines import BASELINES

REPO = Path(__file__).resolve().parents[1]
# .ci/run sets this: there a missing system package fails its tests instead of skipping them.
REQUIRE_SYSTEM_ENV = "UMNIST_REQUIRE_SYSTEM_PACKAGES"
CHROMIUM = Path(os.environ.get("UMNIST_CHROMIUM", "/usr/bin/chromium"))  # Debian's; CI on GitHub uses Chrome
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL binaries (UMNIST_POSTGRESQL_ROOT moves the search, e.g. to hide them)."""
    found = sorted(Path(os.environ.get("UMNIST_POSTGRESQL_ROOT", "/usr/lib/postgresql")).glob("*/bin/initdb"))
    return found[-1].parent if found else None


def require_system(what: str, present: bool, package: str) -> None:
    """Skip (one line naming what to install) when a system package is missing; fail instead under
    .ci/run, which installs them, so that CI never skips these tests silently."""
    if present:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]  # pytest's summary names the helper, not the test
    message = f"{test} needs {what}: apt-get install {package}"
    if os.environ.get(REQUIRE_SYSTEM_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_SYSTEM_ENV}=1: .ci/run installs it)")
    pytest.skip(message)
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "UMNIST_MLFLOW": "off"}
ENV.pop("MLFLOW_TRACKING_URI", None)  # tests choose their store themselves
# With MLflow tracking on, into the copy's own sqlite:///mlflow.db unless a test sets MLFLOW_TRACKING_URI.
TRACKED_ENV = {**ENV, "UMNIST_MLFLOW": "on"}

REPRO_LOG = ".dvc/tmp/repro.log"  # the tiny_repo fixture's `dvc repro` output
PARAMS_READ = ".dvc/tmp/params_read"  # the tiny_repo fixture's stages: the params each read (stage.py)
# Small enough for CI: tests/tiny_params.yaml, shared with the Makefile's smoke retrain.
TINY = yaml.safe_load((REPO / "tests/tiny_params.yaml").read_text())
# The models the pipeline trains (params.yaml's `models`): tests iterate over them, none counts them.
MODELS = yaml.safe_load((REPO / "params.yaml").read_text())["models"]
REPRESENTATIONS = [*MODELS, *BASELINES]


def with_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set `{"ae.epochs": 2, ...}` in a params mapping, in place; return it."""
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[leaf] = value
    return params


def params_with(overrides: dict[str, Any]) -> dict[str, Any]:
    return with_overrides(yaml.safe_load((REPO / "params.yaml").read_text()), overrides)


def parse(overrides: dict[str, Any] | None = None):
    """params.yaml with `overrides`, every section checked (the models' by their own rules)."""
    from unsupervised_mnist.models.registry import parse_params

    return parse_params(params_with(overrides or {}))


def set_params(folder: Path, overrides: dict[str, Any]) -> None:
    """Change some values of `folder`'s params.yaml."""
    params = with_overrides(yaml.safe_load((folder / "params.yaml").read_text()), overrides)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(folder: Path, dest: Path) -> Path:
    """A copy of a project folder with all it holds (DVC cache, MLflow store): for tests that change it."""
    return Path(shutil.copytree(folder, dest, symlinks=True))


def write_params(folder: Path, overrides: dict[str, Any] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params_with({**TINY, **(overrides or {})}), sort_keys=False))


def run_stage(folder: Path, stage: str, *args: str, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run pipeline/<stage>.py with `folder` as the working directory, as DVC would."""
    result = subprocess.run(
        [sys.executable, str(REPO / "pipeline" / f"{stage}.py"), *args],
        cwd=folder, env=env or ENV, capture_output=True, text=True,
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


def dvc(folder: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    env = env or ENV
    env = {**env, "PATH": bin_dir + os.pathsep + env.get("PATH", "")}
    result = subprocess.run([str(Path(bin_dir) / "dvc"), *args], cwd=folder, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 (one worker, no job runner) until the block ends; yields its URL."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend_uri,
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mlflow server did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.5)


@contextlib.contextmanager
def make_server(folder: Path, target: str, variables: dict[str, str], env: dict[str, str], log: Path,
                ready: str) -> Iterator[None]:
    """`make TARGET` in `folder` with this interpreter's venv, in its own process group (make's children go
    with it), until the block ends; `ready` is the URL that answers once the server is up."""
    command = ["make", "-s", "-C", str(folder), target, f"VENV={Path(sys.executable).parent.parent}",
               *(f"{key}={value}" for key, value in variables.items())]
    with open(log, "w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(ready, server, log)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's `postgresql`); yields a database URI.
    PostgreSQL refuses to run as root, so as root (CI) it runs as the `postgres` user."""
    bin_dir = postgres_bin()
    require_system("PostgreSQL", bin_dir is not None, "postgresql")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="umnist-pg-"))  # not under pytest's 0700 tmp: postgres must reach it
    data, port = folder / "data", free_port()
    if as_user:
        shutil.chown(folder, "postgres")
    folder.chmod(0o755)

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, text=True)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust")
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}", "start")
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
        yield f"postgresql+psycopg://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
