"""Stage `train@<model>`: python pipeline/train.py MODEL (a registered model; dvc.yaml runs each of `models`)."""

import subprocess
import sys

from unsupervised_mnist import stage
from unsupervised_mnist.config import Params
from unsupervised_mnist.errors import UserError
from unsupervised_mnist.models.registry import load_params, registered
from unsupervised_mnist.tracking.runs import (
    finish_training_run,
    run_file,
    start_training_run,
    system_metrics,
    write_run_file,
)
from unsupervised_mnist.training.distributed import teardown, torchrun_command, world_from_env
from unsupervised_mnist.training.train import Outputs, train_model


def main(params: Params) -> dict | None:
    if len(sys.argv) != 2 or sys.argv[1] not in registered():
        raise UserError(f"usage: python pipeline/train.py MODEL, MODEL one of {', '.join(registered())}")
    name, world = sys.argv[1], world_from_env()
    if params.train.nproc_per_node > 1 and not world.distributed:
        # The dvc.yaml command stays the same: relaunch this script under torchrun, one process per rank.
        sys.exit(subprocess.run(torchrun_command(params.train.nproc_per_node, __file__, name)).returncode)
    run = start_training_run(params, name) if world.is_main else None  # None when tracking is off
    outputs = Outputs.for_model(name)
    try:
        with system_metrics(params, run):
            trained = train_model(name, params, outputs=outputs, world=world, on_epoch=run.log_epoch if run else None)
    except BaseException:
        finish_training_run(run, [], {}, failed=True)
        raise
    finally:
        teardown(world)
    if not world.is_main:
        return None
    finish_training_run(run, [outputs.curves], trained.timing)
    write_run_file(run_file(name), run)
    return trained.timing  # joins this stage's reports/timings/train@<name>.json


if __name__ == "__main__":
    stage.run(main, load_params)
