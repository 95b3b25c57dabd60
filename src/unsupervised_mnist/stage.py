"""What every pipeline entry point shares: load params, run, turn a UserError into one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from unsupervised_mnist.config import Params, load_params
from unsupervised_mnist.errors import UserError


def run(main: Callable[[Params], object]) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    try:
        main(load_params(os.environ.get("UMNIST_PARAMS", "params.yaml")))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
