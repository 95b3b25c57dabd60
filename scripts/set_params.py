"""python scripts/set_params.py key=value ...: set params.yaml values in place, keeping its comments.

The same `key=value` form as `dvc exp run -S`; values are read as YAML (3 -> int, 0.5 -> float,
true -> bool, [1, 2] -> list). Only existing keys can be set, and the result must pass the same
validation as every stage, so a typo stops here with one line."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from ruamel.yaml import YAML

from unsupervised_mnist.config import parse_params
from unsupervised_mnist.errors import UserError
from unsupervised_mnist.io import write_bytes
from unsupervised_mnist.overrides import set_overrides

PARAMS = Path("params.yaml")


def set_values(text: str, assignments: list[str]) -> str:
    yaml = YAML()  # round-trip: comments and key order survive
    yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    data = set_overrides(yaml.load(text), assignments, str(PARAMS))
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


def main(assignments: list[str]) -> None:
    new = set_values(PARAMS.read_text(), assignments)
    parse_params(YAML(typ="safe").load(new))  # validate before anything is written
    write_bytes(PARAMS, new.encode())


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
