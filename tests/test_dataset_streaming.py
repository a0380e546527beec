"""The streaming dataset build: chunked writes equal in-memory writes, aspect kept, threads agree."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zooprobe.data import files
from zooprobe.data.imageset import ChunkedImageSet
from zooprobe.io import h5io


def _folder(root, sizes):
    rng = np.random.default_rng(0)
    for i, (width, height) in enumerate(sizes):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / f"c{i % 2}" / f"{i}.png")
    return root


def _arrays(path):
    read = h5io.read_image_set(path)
    return read.images, read.labels, read.split, read.attrs["content_sha256"]


def test_streamed_file_equals_the_in_memory_file_and_threads_agree(tmp_path):
    root = _folder(tmp_path / "imgs", [(12, 9), (9, 12), (10, 10), (16, 8), (8, 8)] * 2)
    spec = dict(root=root, size=6, splits={"train": 0.5, "test": 0.5}, seed=0)
    h5io.write_image_set(tmp_path / "memory.h5", files.build_imagefolder(**spec))
    for threads in (1, 2):
        streamed = files.stream_imagefolder(**spec, threads=threads)
        assert isinstance(streamed, ChunkedImageSet)
        # Chunks of 3 rows, so several chunks are in flight at once.
        streamed.chunks = (lambda s=streamed, t=threads: files.decode_in_chunks(
            sorted_paths(root, s), size=6, shape=s.image_shape, threads=t, chunk_rows=3))
        h5io.write_chunked_image_set(tmp_path / f"streamed{threads}.h5", streamed)
        for got, want in zip(_arrays(tmp_path / f"streamed{threads}.h5"), _arrays(tmp_path / "memory.h5")):
            assert np.array_equal(got, want)
    assert h5io.read_image_set(tmp_path / "memory.h5").attrs["content_sha256"] == \
        files.build_imagefolder(**spec).content_sha256()


def sorted_paths(root, streamed):
    # The order build_imagefolder lists: classes sorted, then file names sorted.
    return [p for name in streamed.class_names for p in sorted((root / name).iterdir(), key=lambda p: p.name)]


def test_a_non_square_image_keeps_its_aspect_ratio(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    image = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high: left quarter black, the middle half grey, right white
    image[:, 10:30] = 128
    image[:, 30:] = 255
    Image.fromarray(image).save(tmp_path / "imgs" / "a" / "0.png")
    stored = files.build_imagefolder(root=tmp_path / "imgs", size=20, seed=0).images[0]
    # The central 20 x 20 square is all grey; a squash would have kept the black and white edges.
    assert stored.shape == (20, 20, 3) and (stored == 128).all()


def test_a_corrupt_jpeg_is_named_and_leaves_no_file(tmp_path):
    root = _folder(tmp_path / "imgs", [(8, 8)] * 6)
    broken = root / "c1" / "3.png"
    broken.write_bytes(broken.read_bytes()[:40])
    streamed = files.stream_imagefolder(root=root, size=8, seed=0, threads=2)
    with pytest.raises(ValueError, match=rf"{broken}: cannot decode this image .*Replace it"):
        h5io.write_chunked_image_set(tmp_path / "out.h5", streamed)
    assert list(tmp_path.glob("*.h5")) == [] and list(tmp_path.glob(".out.h5*")) == []


def test_images_of_different_sizes_need_size(tmp_path):
    root = _folder(tmp_path / "imgs", [(8, 8), (9, 8)])
    with pytest.raises(ValueError, match="images differ in size .*set 'size'"):
        files.stream_imagefolder(root=root, seed=0)


def test_kept_encoded_files_are_stored_hashed_and_verified(tmp_path):
    """keep_encoded: the files' bytes, row for row, in the file and in its content hash; a changed byte is caught."""
    import h5py

    from zooprobe.io.records import StaleFileError

    root = _folder(tmp_path / "imgs", [(12, 9), (9, 12), (10, 10)] * 2)
    spec = dict(root=root, size=6, seed=0)
    plain = files.build_imagefolder(**spec)
    kept = files.build_imagefolder(**spec, keep_encoded=True)
    # Same pixels, and the bytes of each row's own file.
    assert np.array_equal(kept.images, plain.images)
    assert kept.encoded == [path.read_bytes() for path in sorted_paths(root, kept)]
    assert kept.content_sha256() != plain.content_sha256()
    h5io.write_chunked_image_set(tmp_path / "kept.h5", files.stream_imagefolder(**spec, keep_encoded=True, threads=2))
    h5io.write_image_set(tmp_path / "plain.h5", plain)
    assert h5io.has_encoded_images(tmp_path / "kept.h5") and not h5io.has_encoded_images(tmp_path / "plain.h5")
    back = h5io.read_image_set(tmp_path / "kept.h5")
    assert back.encoded == kept.encoded and back.attrs["content_sha256"] == kept.content_sha256()
    assert h5io.read_image_set(tmp_path / "plain.h5").encoded is None
    # The loader decodes the files (here: to their bytes' length as a 1x1 image) instead of reading pixels.
    batches = h5io.ImageBatches(tmp_path / "kept.h5", 4, decode=lambda blob: np.full((1, 1, 3), len(blob) % 256, np.uint8))
    assert [int(b[0, 0, 0, 0]) for b in (batches[0], batches[1])] == [len(kept.encoded[0]) % 256, len(kept.encoded[4]) % 256]
    with pytest.raises(ValueError, match="keeps no encoded images .*keep_encoded: true"):
        h5io.ImageBatches(tmp_path / "plain.h5", 4, decode=bytes)
    del batches  # it keeps its read handle open, as a loader worker's would
    # One changed byte of one kept file is a changed content.
    with h5py.File(tmp_path / "kept.h5", "r+") as f:
        row = f["encoded"][2].copy()
        row[-1] ^= 1
        f["encoded"][2] = row
    with pytest.raises(StaleFileError):
        h5io.verify_image_set(tmp_path / "kept.h5")


def test_a_writer_with_encoded_files_needs_every_row(tmp_path):
    labels = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="2 of 3 encoded rows were written"):
        with h5io.ImageSetWriter(tmp_path / "x.h5", image_shape=(2, 2, 3), labels=labels, split=np.array(["test"] * 3),
                                 class_names=["a"], attrs={}, with_encoded=True) as writer:
            writer.write(np.zeros((3, 2, 2, 3), np.uint8))
            writer.write_encoded([b"a", b"b"])
    assert not (tmp_path / "x.h5").exists()
