import gzip

import numpy as np
import pytest

from unsupervised_mnist.data.idx import IMAGES_MAGIC, LABELS_MAGIC, encode_idx, read_idx, read_pair
from unsupervised_mnist.errors import DataError


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    (tmp_path / "images").write_bytes(encode_idx(images))
    (tmp_path / "labels").write_bytes(encode_idx(labels))
    return tmp_path / "images", tmp_path / "labels", images, labels


def test_round_trip_plain_and_gzipped(pair, tmp_path):
    images_path, labels_path, images, labels = pair
    got_images, got_labels = read_pair(images_path, labels_path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    gz = tmp_path / "images.gz"
    gz.write_bytes(gzip.compress(images_path.read_bytes()))
    np.testing.assert_array_equal(read_idx(gz, IMAGES_MAGIC), images)


def test_header_layout_is_mnist():
    data = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == bytes([0, 0, 8, 3])
    assert int.from_bytes(data[4:8], "big") == 2 and len(data) == 16 + 2 * 784


def test_truncated_file(pair):
    images_path, *_ = pair
    images_path.write_bytes(images_path.read_bytes()[:-100])
    expected = rf"^{images_path}: truncated: 5404 bytes, expected 5504 for shape \(7, 28, 28\)$"
    with pytest.raises(DataError, match=expected):
        read_idx(images_path, IMAGES_MAGIC)


def test_wrong_magic(pair):
    _, labels_path, *_ = pair
    with pytest.raises(DataError, match=rf"^{labels_path}: wrong magic number 0x00000801, expected 0x00000803$"):
        read_idx(labels_path, IMAGES_MAGIC)


def test_counts_differ(pair, tmp_path):
    images_path, labels_path, _, labels = pair
    labels_path.write_bytes(encode_idx(labels[:5]))
    with pytest.raises(DataError, match=rf"^{labels_path}: 5 labels but images holds 7 images$"):
        read_pair(images_path, labels_path)


def test_label_out_of_range(pair):
    images_path, labels_path, *_ = pair
    labels_path.write_bytes(encode_idx(np.full(7, 12, np.uint8)))
    with pytest.raises(DataError, match="label 12 found, expected 0..9"):
        read_pair(images_path, labels_path)


def test_not_gzip(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(DataError, match=rf"^{bad}: not a valid gzip file"):
        read_idx(bad, LABELS_MAGIC)
