import contextlib
import gzip
import http.server
import threading
from functools import partial

import numpy as np
import pytest
from helpers import params_with, require_system

from unsupervised_mnist.config import parse_params
from unsupervised_mnist.data import sources
from unsupervised_mnist.data.idx import encode_idx
from unsupervised_mnist.errors import DataError


def data_params(**overrides):
    return parse_params(params_with({f"data.{k}": v for k, v in overrides.items()})).data


def write_idx_folder(folder, n_train=30, n_test=10, gz=False):
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        for name, array in zip(sources.idx_names(prefix), (images, labels)):
            data = encode_idx(array)
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data, mtime=0) if gz else data)
        arrays[prefix] = (images, labels)
    return arrays


def test_mnist5k_is_5000_real_digits_500_per_class(tmp_path):
    checksums = sources.materialise(data_params(source="mnist5k"), tmp_path / "raw")
    assert checksums["counts"] == {"train": 5000}
    splits = sources.read_raw(tmp_path / "raw")
    images, labels = splits["train"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert 0.10 < images.mean() / 255 < 0.16  # MNIST's mean intensity is about 0.13


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_source(tmp_path, gz):
    arrays = write_idx_folder(tmp_path / "in", gz=gz)
    checksums = sources.materialise(data_params(source="idx", path=str(tmp_path / "in")), tmp_path / "raw")
    assert checksums["counts"] == {"train": 30, "test": 10}
    splits = sources.read_raw(tmp_path / "raw")
    np.testing.assert_array_equal(splits["test"][0], arrays["t10k"][0])


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path}/nowhere: folder not found"):
        sources.materialise(data_params(source="idx", path=str(tmp_path / "nowhere")), tmp_path / "raw")


def test_missing_labels_file_is_named(tmp_path):
    write_idx_folder(tmp_path / "in")
    (tmp_path / "in" / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"no train-labels-idx1-ubyte\[\.gz\] found"):
        sources.materialise(data_params(source="idx", path=str(tmp_path / "in")), tmp_path / "raw")


def test_failed_materialise_keeps_previous_output(tmp_path):
    write_idx_folder(tmp_path / "in")
    sources.materialise(data_params(source="idx", path=str(tmp_path / "in")), tmp_path / "raw")
    before = (tmp_path / "raw" / "checksums.json").read_bytes()
    (tmp_path / "in" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03")
    with pytest.raises(DataError, match="truncated IDX header"):
        sources.materialise(data_params(source="idx", path=str(tmp_path / "in")), tmp_path / "raw")
    assert (tmp_path / "raw" / "checksums.json").read_bytes() == before


def test_checksum_that_no_longer_matches(tmp_path):
    write_idx_folder(tmp_path / "in")
    sources.materialise(data_params(source="idx", path=str(tmp_path / "in")), tmp_path / "raw")
    target = tmp_path / "raw" / "train-images-idx3-ubyte"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"^{target}: sha256 .* does not match checksums.json"):
        sources.read_raw(tmp_path / "raw")


def test_fashion_mnist_from_debian_folder_by_default(tmp_path):
    require_system("Debian's Fashion-MNIST", sources.DEBIAN_FASHION_MNIST.is_dir(), "dataset-fashion-mnist")
    checksums = sources.materialise(data_params(source="fashion-mnist"), tmp_path / "raw")
    assert checksums["counts"] == {"train": 60000, "test": 10000}
    assert checksums["origin"] == str(sources.DEBIAN_FASHION_MNIST)


@contextlib.contextmanager
def serve(folder):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_download_from_a_mirror(tmp_path):
    arrays = write_idx_folder(tmp_path / "mirror", gz=True)
    with serve(tmp_path / "mirror") as url:
        checksums = sources.materialise(data_params(source="mnist", url=url), tmp_path / "raw")
    assert checksums["counts"] == {"train": 30, "test": 10}
    assert checksums["origin"] == url
    np.testing.assert_array_equal(sources.read_raw(tmp_path / "raw")["train"][0], arrays["train"][0])


def test_official_mirror_md5_is_checked(tmp_path, monkeypatch):
    write_idx_folder(tmp_path / "mirror", gz=True)
    with serve(tmp_path / "mirror") as url:
        monkeypatch.setitem(sources.MIRRORS, "mnist", [url])
        with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: MD5 \w+ does not match the official f68b3c"):
            sources.materialise(data_params(source="mnist"), tmp_path / "raw")


def test_offline_download_says_which_files_to_put_where(tmp_path):
    with serve(tmp_path) as url:  # an empty folder: every file is a 404
        with pytest.raises(DataError) as error:
            sources.materialise(data_params(source="mnist", url=url), tmp_path / "raw")
    message = str(error.value)
    assert message.startswith("cannot download mnist (")
    assert "put the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in message
    assert message.endswith("in a folder and set data.path to it")
    assert not (tmp_path / "raw").exists()
