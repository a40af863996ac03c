"""Image and depth datasets, the flip-aware sampler and the data loader (reference §6).

Every item is a dict with ``image`` (3, S, S) float in [0, 1], ``index`` (int), ``flip`` (bool)
and ``path`` (str), plus ``depth`` (1, S, S) in world units for paired and synthetic data. A
batch from :func:`make_loader` has ``image`` (B, 3, S, S), ``index`` (B,) int64, ``flip`` (B,)
bool, ``path`` (list of B str) and ``depth`` (B, 1, S, S) when the dataset has depth.

Unreadable files do not stop an epoch: the dataset logs one warning per file and returns
``None``, and :func:`collate_items` drops ``None`` items. A batch whose items were all
unreadable collates to ``None``; the trainer skips such batches.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from unsup3d_cli.checks import check_shape
from unsup3d_cli.images import (
    IMAGE_EXTENSIONS,
    DataError,
    read_grey_levels,
    read_image,
    resize_image,
)

logger = logging.getLogger(__name__)

Crop = int | tuple[int, int, int, int] | None
"""A centre-crop side, a (top, left, height, width) box, or no crop."""
Item = dict[str, Any]

SOURCES = ("folder", "paired", "synthetic")
"""Accepted values of :attr:`DataConfig.source`."""
SPLITS = ("train", "val", "test")
"""Split names accepted by :func:`build_dataset`."""
DEPTH_FAR = 1.1
"""World depth of a synface depth-map pixel of value 0 (background). The ground-truth encoding
``d = DEPTH_FAR - DEPTH_RANGE * v / vmax`` is a fact of the dataset format, defined only here."""
DEPTH_RANGE = 0.2
"""World depth span of a depth map: the brightest value decodes to ``DEPTH_FAR - DEPTH_RANGE``."""

_SYNTHETIC_SEEDS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared."""

    source: str = "folder"
    """'folder' (images under <root>/<split>/**), 'paired' (<root>/<split>/image/** with depth
    files, reference §6.1) or 'synthetic' (generated stand-in, no files)."""
    root: str = "data"
    """Dataset root folder holding the split folders."""
    train_split: str = "train"
    """Folder name of the training split under ``root``."""
    val_split: str = "val"
    """Folder name of the validation split under ``root``."""
    test_split: str = "test"
    """Folder name of the test split under ``root``."""
    image_size: int = 64
    """Side of the square images fed to the model, in pixels."""
    crop: int | tuple[int, int, int, int] | None = None
    """Applied before resizing: an int is a centre-crop side, a 4-tuple a (top, left, height,
    width) box; regions outside the image are zero-padded. None resizes the whole image (a
    non-square image is squashed to a square)."""
    paired_dir_names: tuple[str, str] = ("image", "depth")
    """Folder names of the images and of the depth maps inside a paired split."""
    paired_filename_diff: tuple[str, str] = ("image", "depth")
    """A depth file name is the image file name with every [0] replaced by [1]."""
    hflip: bool = True
    """Randomly flip training images (and depths) horizontally with probability 0.5."""
    num_workers: int = 0
    """Data loader worker processes (0 loads in the main process)."""
    synthetic_train_size: int = 512
    """Number of generated training samples when ``source`` is 'synthetic'."""
    synthetic_val_size: int = 64
    """Number of generated validation samples when ``source`` is 'synthetic'."""
    synthetic_test_size: int = 64
    """Number of generated test samples when ``source`` is 'synthetic'."""

    def __post_init__(self) -> None:
        """Reject values that cannot describe a dataset (ValueError naming the field)."""
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        _check_crop(self.crop)
        for name, value, low in (
            ("image_size", self.image_size, 1),
            ("num_workers", self.num_workers, 0),
            ("synthetic_train_size", self.synthetic_train_size, 1),
            ("synthetic_val_size", self.synthetic_val_size, 1),
            ("synthetic_test_size", self.synthetic_test_size, 1),
        ):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if not self.paired_filename_diff[0]:
            raise ValueError("paired_filename_diff[0] must not be empty")


def _check_crop(crop: Crop) -> None:
    """Raise ValueError unless ``crop`` is None, a positive int or a valid box."""
    if crop is None:
        return
    if isinstance(crop, int):
        if crop < 1:
            raise ValueError(f"crop must be a positive side length, got {crop}")
        return
    if len(crop) != 4:
        raise ValueError(f"crop box must be (top, left, height, width), got {crop}")
    top, left, height, width = crop
    if top < 0 or left < 0 or height < 1 or width < 1:
        raise ValueError(f"crop box needs top, left >= 0 and height, width >= 1, got {crop}")


# --------------------------------------------------------------------------------------------
# Files


def find_images(root: Path | str) -> list[Path]:
    """List the image files under a folder, recursively and sorted.

    Hidden files (names starting with '.') are ignored.

    Args:
        root: the folder to search.

    Returns:
        Paths whose suffix is in :data:`IMAGE_EXTENSIONS`, sorted.

    Raises:
        DataError: if the folder is missing, not a folder, or holds no image.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"not a folder: {root}")
    paths = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )
    if not paths:
        raise DataError(f"no image files ({' '.join(IMAGE_EXTENSIONS)}) found under {root}")
    return paths


def crop_pixels(pixels: np.ndarray, crop: Crop) -> np.ndarray:
    """Cut a configured crop out of a decoded image, zero-padding where it leaves the image.

    An int side is centred as torchvision's ``center_crop`` centres it (the offset
    ``round((H - side) / 2)``, or the image padded evenly when the side is larger).

    Args:
        pixels: shape (H, W, C).
        crop: a centre-crop side, a (top, left, height, width) box, or None (no crop).

    Returns:
        The crop, shape (height, width, C); ``pixels`` itself when ``crop`` is None.
    """
    if crop is None:
        return pixels
    if isinstance(crop, int):
        height, width = pixels.shape[:2]
        crop = (_centred_offset(height, crop), _centred_offset(width, crop), crop, crop)
    top, left, height, width = crop
    out = np.zeros((height, width, pixels.shape[2]), dtype=pixels.dtype)  # (h, w, C)
    first_row, end_row = max(top, 0), min(top + height, pixels.shape[0])
    first_col, end_col = max(left, 0), min(left + width, pixels.shape[1])
    if first_row < end_row and first_col < end_col:
        inside = pixels[first_row:end_row, first_col:end_col]
        out[first_row - top : end_row - top, first_col - left : end_col - left] = inside
    return out


def _centred_offset(extent: int, side: int) -> int:
    """Start of a centred ``side`` in an ``extent`` (negative when the side is larger)."""
    return int(round((extent - side) / 2.0)) if side <= extent else -((side - extent) // 2)


def load_image(path: Path | str, size: int = 64, crop: Crop = None) -> Tensor:
    """Read an image file as an RGB float tensor.

    Decoding (EXIF orientation, grey, 16-bit, palette, alpha over white, CMYK) and the
    bilinear resize are :mod:`unsup3d_cli.images`'s, shared with ``reconstruct``.

    Args:
        path: image file.
        size: output side S in pixels.
        crop: centre-crop side or (top, left, height, width) box, applied before resizing.

    Returns:
        Image of shape (3, S, S), float32 in [0, 1].

    Raises:
        DataError: if the file cannot be decoded.
    """
    pixels = read_image(path).pixels  # (H, W, 3)
    return resize_image(crop_pixels(pixels, crop), size)  # (3, S, S)


def load_depth(path: Path | str, size: int = 64, crop: Crop = None) -> Tensor:
    """Read a depth map file and decode it to world depth.

    The decoding is ``d = DEPTH_FAR - DEPTH_RANGE * v / vmax`` (1.1 and 0.2) with ``vmax`` 255
    for 8-bit and 65535 for 16-bit files (brighter is nearer, black background is 1.1). RGB
    files use channel 0. The map goes through the same crop and resize as the image.

    Args:
        path: depth image file (8- or 16-bit).
        size: output side S in pixels.
        crop: centre-crop side or (top, left, height, width) box, applied before resizing.

    Returns:
        Depth of shape (1, S, S), float32, in [0.9, 1.1].

    Raises:
        DataError: if the file cannot be decoded or has an unsupported pixel format.
    """
    levels = read_grey_levels(path)[..., None]  # (H, W, 1), v / vmax
    levels = resize_image(crop_pixels(levels, crop), size)  # (1, S, S)
    return DEPTH_FAR - DEPTH_RANGE * levels


def paired_depth_path(
    image_path: Path, image_root: Path, depth_root: Path, filename_diff: tuple[str, str]
) -> Path:
    """Depth file of an image in the paired layout.

    ``<image_root>/<sub>/<name>`` pairs with ``<depth_root>/<sub>/<name'>`` where ``name'`` is
    ``name`` with every ``filename_diff[0]`` replaced by ``filename_diff[1]``.
    """
    relative = image_path.relative_to(image_root)
    name = relative.name.replace(filename_diff[0], filename_diff[1])
    return depth_root / relative.parent / name


# --------------------------------------------------------------------------------------------
# Datasets


def _unpack_key(key: int | tuple[int, bool], length: int) -> tuple[int, bool]:
    """Dataset key → (index, flip); a plain int means no flip."""
    if isinstance(key, tuple):
        index, flip = operator.index(key[0]), bool(key[1])
    else:
        index, flip = operator.index(key), False
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length} items")
    return index, flip


class _SkippingDataset(Dataset):
    """Shared item logic: (index, flip) keys, flipping, and skipping unreadable files."""

    def __init__(self) -> None:
        self._skipped: set[int] = set()

    @property
    def num_skipped(self) -> int:
        """Items found unreadable so far in this process (each warned about once)."""
        return len(self._skipped)

    def _load(self, index: int) -> Item:
        raise NotImplementedError

    def __getitem__(self, key: int | tuple[int, bool]) -> Item | None:
        """Load item ``index`` of a key ``index`` or ``(index, flip)``; None if unreadable."""
        index, flip = _unpack_key(key, len(self))
        try:
            item = self._load(index)
        except DataError as exc:
            if index not in self._skipped:
                self._skipped.add(index)
                logger.warning("skipping unreadable item (%d so far): %s", len(self._skipped), exc)
            return None
        if flip:
            item = {k: v.flip(-1) if isinstance(v, Tensor) else v for k, v in item.items()}
        return {**item, "index": index, "flip": flip}


class ImageFolderDataset(_SkippingDataset):
    """Unlabelled images found recursively under a folder.

    Items: ``image`` (3, S, S) in [0, 1], ``index``, ``flip``, ``path``.
    """

    def __init__(self, root: Path | str, image_size: int = 64, crop: Crop = None) -> None:
        """Index the images under ``root`` (DataError if missing or empty)."""
        super().__init__()
        self.root = Path(root)
        self.image_size = image_size
        self.crop = crop
        self.paths = find_images(self.root)

    def __len__(self) -> int:
        """Number of image files."""
        return len(self.paths)

    def _load(self, index: int) -> Item:
        path = self.paths[index]
        return {"image": load_image(path, self.image_size, self.crop), "path": str(path)}


class PairedDepthDataset(_SkippingDataset):
    """Images with ground-truth depth maps in the synface layout (reference §6.1).

    Images are under ``<root>/<dir_names[0]>``, depths under ``<root>/<dir_names[1]>`` with the
    same sub-folders (see :func:`paired_depth_path`). Images without a depth file are dropped
    with one warning giving the count. Items: ``image``, ``depth`` (1, S, S) flipped with the
    image, ``index``, ``flip``, ``path`` (the image file).
    """

    def __init__(
        self,
        root: Path | str,
        image_size: int = 64,
        crop: Crop = None,
        dir_names: tuple[str, str] = ("image", "depth"),
        filename_diff: tuple[str, str] = ("image", "depth"),
    ) -> None:
        """Index the image/depth pairs under ``root`` (DataError if there are none)."""
        super().__init__()
        self.root = Path(root)
        self.image_size = image_size
        self.crop = crop
        image_root, depth_root = self.root / dir_names[0], self.root / dir_names[1]
        images = find_images(image_root)
        pairs = [(p, paired_depth_path(p, image_root, depth_root, filename_diff)) for p in images]
        self.pairs = [(image, depth) for image, depth in pairs if depth.is_file()]
        if not self.pairs:
            raise DataError(
                f"no image under {image_root} has a depth file under {depth_root} "
                f"(depth name = image name with {filename_diff[0]!r} → {filename_diff[1]!r})"
            )
        if len(self.pairs) < len(images):
            logger.warning(
                "%d of %d images under %s have no depth file and are dropped",
                len(images) - len(self.pairs),
                len(images),
                image_root,
            )

    def __len__(self) -> int:
        """Number of image/depth pairs."""
        return len(self.pairs)

    def _load(self, index: int) -> Item:
        image_path, depth_path = self.pairs[index]
        return {
            "image": load_image(image_path, self.image_size, self.crop),
            "depth": load_depth(depth_path, self.image_size, self.crop),
            "path": str(image_path),
        }


class SyntheticDataset(_SkippingDataset):
    """Generated images with exact depth (``unsup3d_cli.synthetic.synthetic_sample``).

    Item ``index`` is ``synthetic_sample(index, seed, image_size)``, so a dataset is fully
    determined by (length, seed, image_size); splits use different seeds. Items: ``image``,
    ``depth``, ``index``, ``flip``, ``path`` ("synthetic:<seed>:<index>").
    """

    def __init__(self, length: int, seed: int, image_size: int = 64) -> None:
        """Describe ``length`` samples of generator seed ``seed``."""
        super().__init__()
        if length < 1:
            raise DataError(f"synthetic dataset needs at least one sample, got length {length}")
        self.length = length
        self.seed = seed
        self.image_size = image_size
        self.root = Path(f"synthetic:{seed}")

    def __len__(self) -> int:
        """Number of samples."""
        return self.length

    def _load(self, index: int) -> Item:
        from unsup3d_cli.synthetic import synthetic_sample  # noqa: PLC0415 (synthetic imports data)

        image, depth = synthetic_sample(index, self.seed, self.image_size)
        size = self.image_size
        check_shape(image, f"3 {size} {size}", "synthetic image")
        check_shape(depth, f"1 {size} {size}", "synthetic depth")
        return {"image": image, "depth": depth, "path": f"synthetic:{self.seed}:{index}"}


def build_dataset(cfg: DataConfig, split: str) -> Dataset:
    """Build the dataset of one split as configured.

    Args:
        cfg: data settings.
        split: 'train', 'val' or 'test', mapped to ``cfg.train_split`` etc. (for synthetic
            data: to ``cfg.synthetic_*_size`` and a per-split generator seed).

    Returns:
        An :class:`ImageFolderDataset`, :class:`PairedDepthDataset` or :class:`SyntheticDataset`.
        Flipping is decided by the loader (:func:`make_loader`), not here.

    Raises:
        DataError: if the split folder is missing or holds no usable image.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    folders = {"train": cfg.train_split, "val": cfg.val_split, "test": cfg.test_split}
    root = Path(cfg.root) / folders[split]
    if cfg.source == "folder":
        return ImageFolderDataset(root, cfg.image_size, cfg.crop)
    if cfg.source == "paired":
        return PairedDepthDataset(
            root, cfg.image_size, cfg.crop, cfg.paired_dir_names, cfg.paired_filename_diff
        )
    if cfg.source == "synthetic":
        sizes = {
            "train": cfg.synthetic_train_size,
            "val": cfg.synthetic_val_size,
            "test": cfg.synthetic_test_size,
        }
        return SyntheticDataset(sizes[split], _SYNTHETIC_SEEDS[split], cfg.image_size)
    raise DataError(f"data.source must be one of {', '.join(SOURCES)}, got {cfg.source!r}")


# --------------------------------------------------------------------------------------------
# Sampling and loading


def _epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed that depends only on (seed, epoch)."""
    digest = hashlib.blake2b(f"unsup3d-sampler:{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


FLIP_PROBABILITY = 0.5
"""Chance that a training image is mirrored (the original's random horizontal flip)."""


class FlipSampler(Sampler[tuple[int, bool]]):
    """Yields ``(index, flip)`` keys in an order fixed by (seed, epoch), sharded over processes.

    The permutation (when ``shuffle``) and the flip decisions (p = 0.5, when ``hflip``) come
    from a ``torch.Generator`` seeded from (seed, epoch) only, so an epoch can be replayed
    exactly, and every process draws the same order. That order is cut into global batches of
    ``batch_size``; process ``rank`` of ``world_size`` takes the ``rank``-th contiguous slice of
    each, so the processes together see every global batch once, with the same flips as one
    process would. A final global batch smaller than ``world_size`` cannot give every process
    an item and is left out of the epoch (at most ``world_size − 1`` items; none on one process).

    To resume mid-epoch call ``set_epoch(epoch, start_index)``: iteration then yields the tail
    of that epoch's order from global position ``start_index`` (a multiple of ``batch_size``,
    see :meth:`start_index_of_batch`), whatever the world size was when it was saved.
    ``set_epoch`` must be called before every epoch; it resets ``start_index`` to its argument.
    """

    def __init__(
        self,
        num_items: int,
        shuffle: bool = True,
        hflip: bool = False,
        seed: int = 0,
        batch_size: int = 1,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """Describe the sampling of ``num_items`` items in global batches of ``batch_size``."""
        if num_items < 0 or batch_size < 1:
            raise ValueError(
                f"need num_items >= 0 and batch_size >= 1, got {num_items}, {batch_size}"
            )
        if world_size < 1 or not 0 <= rank < world_size or batch_size % world_size:
            raise ValueError(
                f"need 0 <= rank < world_size dividing batch_size, got rank {rank}, world size "
                f"{world_size}, batch size {batch_size}"
            )
        self.num_items = num_items
        self.shuffle = shuffle
        self.hflip = hflip
        self.seed = seed
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_index = 0

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        """Select the epoch to draw and how many of its leading samples to skip."""
        if not 0 <= start_index <= self.num_items:
            raise ValueError(f"start_index must be in [0, {self.num_items}], got {start_index}")
        self.epoch = epoch
        self.start_index = start_index

    def start_index_of_batch(self, batch: int) -> int:
        """Global position of the first sample of global batch ``batch`` (to resume by batches)."""
        return min(batch * self.batch_size, self.num_items)

    @property
    def batches_per_epoch(self) -> int:
        """Global batches in a whole epoch (the part skipped by ``set_epoch`` included)."""
        full, rest = divmod(self.num_items, self.batch_size)
        return full + (rest >= self.world_size)

    def epoch_order(self) -> list[tuple[int, bool]]:
        """The full ``(index, flip)`` order of the current epoch, skipped part included."""
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        if self.shuffle:
            indices = torch.randperm(self.num_items, generator=generator).tolist()
        else:
            indices = list(range(self.num_items))
        if self.hflip:
            flips = (torch.rand(self.num_items, generator=generator) < FLIP_PROBABILITY).tolist()
        else:
            flips = [False] * self.num_items
        return list(zip(indices, flips, strict=True))

    def _shard(self, order: list[tuple[int, bool]]) -> list[tuple[int, bool]]:
        """This process's slices of the global batches of ``order``."""
        if self.world_size == 1:
            return order
        mine = []
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if len(batch) < self.world_size:
                break
            size = len(batch)
            mine += batch[
                self.rank * size // self.world_size : (self.rank + 1) * size // self.world_size
            ]
        return mine

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        """Iterate over this process's share of the epoch's order from ``start_index`` on."""
        return iter(self._shard(self.epoch_order()[self.start_index :]))

    def __len__(self) -> int:
        """Samples left to this process in the epoch after skipping."""
        if self.world_size == 1:
            return self.num_items - self.start_index
        return len(self._shard([(0, False)] * (self.num_items - self.start_index)))


def collate_items(items: Sequence[Item | None]) -> dict[str, Any] | None:
    """Stack dataset items into a batch, dropping ``None`` (unreadable) items.

    Returns:
        ``image`` (B, 3, S, S), ``index`` (B,) int64, ``flip`` (B,) bool, ``path`` list of B
        str, and ``depth`` (B, 1, S, S) if the items have it; None if every item was None.
    """
    kept = [item for item in items if item is not None]
    if not kept:
        return None
    batch: dict[str, Any] = {
        "image": torch.stack([item["image"] for item in kept]),  # (B, 3, S, S)
        "index": torch.tensor([item["index"] for item in kept], dtype=torch.int64),
        "flip": torch.tensor([item["flip"] for item in kept], dtype=torch.bool),
        "path": [item["path"] for item in kept],
    }
    if "depth" in kept[0]:
        batch["depth"] = torch.stack([item["depth"] for item in kept])  # (B, 1, S, S)
    return batch


def seed_worker(worker_id: int) -> None:
    """Seed python ``random`` and numpy in a loader worker from its torch seed."""
    del worker_id  # torch already gives each worker its own initial seed
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    hflip: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """Wrap a dataset in a DataLoader driven by a :class:`FlipSampler`.

    The sampler is ``loader.sampler``; call ``loader.sampler.set_epoch(epoch, start_index)``
    before each epoch. Batches are as described by :func:`collate_items` and may be None.

    Args:
        dataset: a dataset of this module (keys ``(index, flip)``).
        batch_size: items per global batch (over all processes); each process loads
            ``batch_size / world_size`` of them.
        shuffle: shuffle the order every epoch.
        hflip: flip items with probability 0.5 (training split only).
        seed: seed of the order, the flips and the workers.
        num_workers: loader worker processes.
        drop_last: drop the last incomplete batch.
        rank: this process's rank (training under ``torchrun``).
        world_size: the number of processes.
        pin_memory: page-locked batches (faster copies to a GPU) and loader workers kept
            alive between epochs.

    Raises:
        DataError: if ``drop_last`` is set and the dataset is smaller than one batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if drop_last and len(dataset) < batch_size:
        where = getattr(dataset, "root", type(dataset).__name__)
        raise DataError(
            f"{where} has {len(dataset)} items, fewer than one batch of {batch_size}; "
            "lower train.batch_size or add data"
        )
    sampler = FlipSampler(
        len(dataset), shuffle, hflip, seed, batch_size, rank=rank, world_size=world_size
    )
    return DataLoader(
        dataset,
        batch_size=batch_size // world_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_items,
        drop_last=drop_last,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin_memory,
        persistent_workers=pin_memory and num_workers > 0,
    )
