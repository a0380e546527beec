"""The one registry of dataset sources: source name -> how to build it, and the ``dataset`` stage.

A params entry ``datasets.<name>`` names its ``source``; :data:`SOURCES` maps every valid source to
its builder in the module of its family (:mod:`~zooprobe.data.files`, :mod:`~zooprobe.data.procedural`,
:mod:`~zooprobe.data.shifted`, :mod:`~zooprobe.data.torchvision_sets`, :mod:`~zooprobe.data.human`,
:mod:`~zooprobe.data.dense_sets`). :func:`build_dataset` builds one entry and writes its file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from zooprobe.data.dense_sets import build_middlebury_motorcycle
from zooprobe.data.files import build_from_files, build_packaged, fetch_files, stream_imagefolder
from zooprobe.data.human import build_kriegeskorte92, build_peterson
from zooprobe.data.imageset import ChunkedImageSet, ImageSet
from zooprobe.data.label_space import head_class_indices, head_label_names
from zooprobe.data.procedural import build_procedural
from zooprobe.data.shifted import build_corrupt, build_shift
from zooprobe.data.torchvision_sets import build_torchvision
from zooprobe.io.h5io import read_image_set, write_chunked_image_set
from zooprobe.params.config import expand_path


@dataclass(frozen=True)
class Source:
    """How one source is built from its params entry.

    Attributes:
        build: the builder, called with the entry's keys (less ``source`` and ``sha256``) as keywords.
        takes: what the builder gets first, before those keywords: ``base``, the set a shifted copy
            is made of (the ``--base`` file); ``files``, the entry's ``files`` downloaded (role -> path,
            into ``--download-dir``); ``None``, nothing.
        has_root: the entry's ``root`` is a local folder, which may hold ``~`` or ``$VARIABLES``.
    """

    build: Callable[..., ImageSet]
    takes: Literal["base", "files"] | None = None
    has_root: bool = False


SOURCES: dict[str, Source] = {
    "packaged": Source(build_packaged),
    "procedural": Source(build_procedural),
    "shift": Source(build_shift, takes="base"),
    "imagefolder": Source(stream_imagefolder, has_root=True),
    "corrupt": Source(build_corrupt, takes="base"),
    "url": Source(build_from_files, takes="files"),
    "torchvision": Source(build_torchvision, has_root=True),
    "peterson": Source(build_peterson, has_root=True),
    "kriegeskorte92": Source(build_kriegeskorte92, has_root=True),
    "middlebury": Source(build_middlebury_motorcycle),
}


def build_image_set(spec: Mapping[str, Any], *, base: str | Path | None = None,
                    download_dir: str | Path | None = None, dataset: str = "",
                    threads: int = 1) -> ImageSet | ChunkedImageSet:
    """Build the set a params entry describes (without writing it or checking its ``sha256``).

    Args:
        spec: the ``datasets.<name>`` entry: ``source`` (one of :data:`SOURCES`) and its builder's params.
        base: the image-set file a ``shift`` or ``corrupt`` source copies.
        download_dir: where a ``url`` source keeps its downloaded files.
        dataset: the dataset's name, for messages.
        threads: decoding threads for the sources that use them (``imagefolder``).

    Returns:
        The :class:`ImageSet` or :class:`ChunkedImageSet` (its pixels not yet decoded), with the builder's
        provenance as ``attrs`` (and ``head_classes`` where declared).
    """
    params = dict(spec, threads=threads)
    name = params.pop("source")
    params.pop("sha256", None)
    head_classes = params.pop("head_classes", None)
    built = _build(name, params, base=base, download_dir=download_dir)
    return with_head_classes(built, space=head_classes, dataset=dataset or name)


def with_head_classes(built: ImageSet | ChunkedImageSet, *, space: str | None,
                      dataset: str) -> ImageSet | ChunkedImageSet:
    """Record which head label space a set's classes belong to (``head_classes``), checking its class names.

    A shifted copy keeps its base's declaration (same classes), so only the clean set declares it.

    Args:
        built: the built set; its ``attrs`` gain ``head_classes`` (space, each class's head index, the list's source).
        space: the declared label space (one of ``zooprobe.params.spec.HEAD_LABEL_SPACES``), or ``None``.
        dataset: the dataset's name, for messages.

    Returns:
        ``built``.
    """
    if space is None:
        return built
    _, list_source = head_label_names(space)
    built.attrs["head_classes"] = {"space": space, "label_list": list_source,
                                   "indices": head_class_indices(dataset=dataset, space=space,
                                                                 class_names=built.class_names)}
    return built


def _build(name: str, params: dict[str, Any], *, base: str | Path | None,
           download_dir: str | Path | None) -> ImageSet | ChunkedImageSet:
    if name not in SOURCES:
        raise ValueError(f"unknown dataset source {name!r}; valid: {list(SOURCES)}")
    source = SOURCES[name]
    if source.has_root:
        params["root"] = expand_path(params["root"])
    if source.takes == "base":
        if not base:
            raise ValueError(f"a {name!r} dataset needs --base <path of the dataset it shifts>")
        base_set = read_image_set(base)
        built = source.build(base_set, **params)
        inherited = base_set.attrs.get("head_classes")
        if inherited and built.class_names == base_set.class_names:
            built.attrs["head_classes"] = inherited
        return built
    if source.takes == "files":
        if not download_dir:
            raise ValueError(f"a {name!r} dataset needs --download-dir <folder for the downloaded files>")
        mirror = params.pop("mirror", None)
        files = fetch_files(params.pop("files"), download_dir=download_dir,
                            mirror=expand_path(mirror) if mirror else None)
        return source.build(files, **params)
    return source.build(**params)


def build_dataset(*, name: str, spec: Mapping[str, Any], out: str | Path, base: str | Path | None = None,
                  download_dir: str | Path | None = None, provenance: Mapping[str, Any] | None = None,
                  threads: int = 1) -> dict[str, Any]:
    """The ``dataset`` stage: build one params entry, check its expected content sha256, write its file.

    Args:
        name: the dataset's name in the params.
        spec: its params entry (see :func:`build_image_set`); an optional ``sha256`` is the content
            sha256 the built set must have.
        out: the ``.h5`` file to write (atomically; nothing is written when a check fails).
        base: the image-set file a ``shift`` or ``corrupt`` source copies.
        download_dir: where a ``url`` source keeps its downloaded files.
        provenance: entries recorded first after the builder's own (e.g. the code version).
        threads: decoding threads for the sources that use them (``imagefolder``).

    Returns:
        The provenance the written file records: the builder's, ``provenance``, ``name``, ``params``
        (the entry as given), then ``content_sha256``, ``class_names``, ``n`` and ``image_shape``.

    Raises:
        ChecksumError: the entry has a ``sha256`` and the built content has another.
    """
    built = build_image_set(spec, base=base, download_dir=download_dir, dataset=name, threads=threads)
    built.attrs.update(provenance or {}, name=name, params=spec)
    # Every source goes through the streaming writer: a large one decodes its pixels chunk by chunk
    # as they are written, and the sha256 is checked when the last chunk is in (nothing is left on failure).
    chunked = built if isinstance(built, ChunkedImageSet) else ChunkedImageSet.of(built)
    return write_chunked_image_set(out, chunked, expected_sha256=spec.get("sha256"), describe=f"dataset {name!r}")
