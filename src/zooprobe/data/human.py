"""Human-judgement data as image sets: the stimuli, with the human data stored beside them.

Each builder returns an :class:`~zooprobe.data.imageset.ImageSet` whose ``human`` mapping holds
the judgements, aligned with the images' rows:

* ``similarity`` (N, N): pairwise similarity, higher is more similar (Peterson et al. 2018);
* ``rdms`` (S, N, N): one dissimilarity matrix per subject (Kriegeskorte et al. 2008);
* ``label_probs`` (N, K): human label distribution per image, NaN rows where none (CIFAR-10H);
* ``triplets`` (T, 3): odd-one-out choices, the odd one out last (THINGS).

Every stimulus of a similarity set is its own class (label = row), and every row is ``test``.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from zooprobe.data.imageset import ImageSet, resize_images

PETERSON_DOMAINS: tuple[str, ...] = ("animals", "automobiles", "fruits", "furniture", "various", "vegetables")
HUMAN_KINDS: tuple[str, ...] = ("similarity", "rdms", "label_probs", "triplets")


def _stimulus_set(images: np.ndarray, names: list[str], human: dict[str, np.ndarray], attrs: dict[str, Any]
                  ) -> ImageSet:
    n = len(images)
    return ImageSet(images, np.arange(n, dtype=np.int64), np.array(["test"] * n, dtype="U5"), names, attrs,
                    human=human)


def _load_rgb(data: bytes | Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(image)


def build_peterson(*, root: str | Path, domain: str, size: int = 224, **_: Any) -> ImageSet:
    """Peterson, Abbott & Griffiths (2018): 120 images of one domain and their 120 x 120 similarity.

    Args:
        root: the folder holding ``<domain>/similarity.npz`` (``similarity``, ``fnames``) and
            ``<domain>/images/``.
        domain: one of :data:`PETERSON_DOMAINS` that has images (animals, fruits, vegetables in
            the shared assets).
        size: side the images are resized to.

    Returns:
        The stimuli in the matrix's order, with ``human["similarity"]``.
    """
    if domain not in PETERSON_DOMAINS:
        raise ValueError(f"unknown Peterson domain {domain!r}; valid: {list(PETERSON_DOMAINS)}")
    folder = Path(root) / domain
    with np.load(folder / "similarity.npz", allow_pickle=False) as data:
        similarity, names = data["similarity"].astype(np.float64), [str(n) for n in data["fnames"]]
    if not (folder / "images").is_dir():
        raise FileNotFoundError(f"{folder / 'images'} does not exist: the domain {domain!r} has no images here; "
                                f"use one whose folder has images/ (animals, fruits, vegetables in the shared assets)")
    images = np.stack([_load_rgb(folder / "images" / name, size) for name in names])
    if similarity.shape != (len(names), len(names)) or not np.allclose(similarity, similarity.T):
        raise ValueError(f"{folder / 'similarity.npz'}: expected a symmetric {len(names)}x{len(names)} matrix")
    return _stimulus_set(images, names, {"similarity": similarity},
                         {"source": "peterson", "domain": domain, "size": size})


def build_kriegeskorte92(*, root: str | Path, size: int = 175, **_: Any) -> ImageSet:
    """Kriegeskorte et al. (2008): the 92 object images and 16 subjects' similarity-judgement RDMs.

    Args:
        root: the folder with ``92_behavRDMs.mat`` and ``Kriegeskorte_Neuron2008_supplementalData.mat``.
        size: side the 175 px images are resized to.

    Returns:
        The 92 stimuli, with ``human["rdms"]`` (16, 92, 92).
    """
    from scipy.io import loadmat

    root = Path(root)
    behaviour = loadmat(root / "92_behavRDMs.mat")["rdms_behav_92"][0]
    rdms = np.stack([np.asarray(subject["RDM"], dtype=np.float64) for subject in behaviour])
    stimuli = loadmat(root / "Kriegeskorte_Neuron2008_supplementalData.mat")["stimuli_92objs"][0]
    images = np.stack([np.asarray(s["image"], dtype=np.uint8) for s in stimuli])
    if size != images.shape[1]:
        images = resize_images(images, size)
    names = [f"{i:02d}_{str(s['category'][0]).replace(' ', '_')}" for i, s in enumerate(stimuli)]
    if rdms.shape[1:] != (len(images), len(images)):
        raise ValueError(f"RDMs {rdms.shape} do not match the {len(images)} images")
    return _stimulus_set(images, names, {"rdms": rdms}, {"source": "kriegeskorte92", "subjects": len(rdms),
                                                          "size": size})


def read_triplets(path: str | Path) -> np.ndarray:
    """Read odd-one-out triplets: one per line, three 0-based object indices, the odd one out last.

    This is the layout of the THINGS odd-one-out files (Hebart et al. 2020, ``trainset.txt``):
    whitespace-separated integers, the first two the pair chosen as most similar.
    """
    triplets = np.loadtxt(path, dtype=np.int64, ndmin=2)
    if triplets.shape[1] != 3:
        raise ValueError(f"{path}: expected 3 object indices per line, got {triplets.shape[1]}")
    return triplets


def build_things_triplets(files: dict[str, Path], *, size: int = 224, **_: Any) -> ImageSet:
    """THINGS odd-one-out: object images and human triplet choices.

    Args:
        files: ``triplets`` (see :func:`read_triplets`) and ``images``, a zip whose image files,
            sorted by name, are the objects in index order (one image per object concept).
        size: side the images are resized to.

    Returns:
        The objects, with ``human["triplets"]``.
    """
    with zipfile.ZipFile(files["images"]) as archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png")))
        images = np.stack([_load_rgb(archive.read(name), size) for name in names])
    triplets = read_triplets(files["triplets"])
    if triplets.min() < 0 or triplets.max() >= len(images):
        raise ValueError(f"triplets index objects 0..{triplets.max()}, but the image zip has {len(images)} images")
    return _stimulus_set(images, [Path(n).stem for n in names], {"triplets": triplets},
                         {"source": "url", "format": "things-triplets", "size": size})


def label_probs_by_order(path: str | Path, ranks: np.ndarray) -> np.ndarray:
    """Human label distributions, aligned to image rows by each image's rank in an external order.

    Args:
        path: ``.npy`` (M, K), row r for the image at rank r of the order (CIFAR-10H: the original
            CIFAR-10 test order).
        ranks: each image's rank in that order, or -1 where it has none.

    Returns:
        (N, K) float array, NaN rows for images without a rank.
    """
    probs = np.load(path, allow_pickle=False).astype(np.float64)
    if probs.ndim != 2:
        raise ValueError(f"{path}: expected a (images, classes) array, got shape {probs.shape}")
    if ranks.max() >= len(probs):
        raise ValueError(f"{path} has {len(probs)} rows, but an image has rank {ranks.max()} in the order")
    out = np.full((len(ranks), probs.shape[1]), np.nan)
    known = ranks >= 0
    out[known] = probs[ranks[known]]
    return out
