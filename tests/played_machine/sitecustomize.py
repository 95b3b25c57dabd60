"""Loaded at start-up (on PYTHONPATH) by bench/played_gpu.sh: the Python of the lent GPU machine, played on a
CPU. The packages that image lacks can only come from the carried site folder (PLAYED_SITE), as bench/gpu.sh
installs them there from the wheelhouse; anywhere else they are missing, as they are there."""

import importlib.abc
import importlib.machinery
import os
import sys

NOT_ON_THE_LENT_MACHINE = {"dvc", "mlflow", "mlxtend", "pydantic", "umap", "pynndescent"}


class OnlyFromTheCarriedSite(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "." in name or name not in NOT_ON_THE_LENT_MACHINE:
            return None  # a submodule is found in its package's own folder: the carried one, if it was allowed
        site = os.environ.get("PLAYED_SITE")
        spec = importlib.machinery.PathFinder.find_spec(name, [site]) if site else None
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the lent GPU machine)", name=name)
        return spec


sys.meta_path.insert(0, OnlyFromTheCarriedSite())
