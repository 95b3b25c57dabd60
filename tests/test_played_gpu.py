"""bench/gpu.sh's steps on tiny sizes, on this CPU made to look like the lent GPU machine (bench/played_gpu.sh):
`python3` only, no `bc`, and the packages that image lacks importable only from the carried site folder. The
first GPU minute then yields numbers, not a crash."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ENV, REPO

pytestmark = pytest.mark.slow


def test_the_gpu_script_runs_through_on_a_machine_shaped_like_the_lent_one():
    env = {**ENV, "PATH": str(Path(sys.executable).parent) + os.pathsep + ENV["PATH"]}
    result = subprocess.run(["bash", str(REPO / "bench/played_gpu.sh")], env=env, capture_output=True, text=True)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    for section in ("== 1. bench/train_speed.py", "== 2. the default pipeline", "== 3. train@", "== done in"):
        assert section in out, section
    assert re.search(r"conv-ae .* \d+\.\d\d +\d+ +\d+\.\d\d +\d+\.\d\d", out), out  # the speed table
    rows = {line.split(" | ")[0].strip() for line in out.splitlines() if line.startswith("   ") and " | " in line}
    assert {"ae", "vae", "gan", "pca", "pixels"} <= rows, rows  # the quality rows of every representation
    assert "torchrun x1" in out and "No module named" not in out
