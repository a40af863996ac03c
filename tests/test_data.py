"""Tests of image/depth loading, the datasets, the flip sampler and the loader."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unsup3d_cli.data import (
    DataConfig,
    DataError,
    FlipSampler,
    ImageFolderDataset,
    PairedDepthDataset,
    SyntheticDataset,
    build_dataset,
    collate_items,
    find_images,
    load_depth,
    load_image,
    make_loader,
    paired_depth_path,
)

SIZE = 16


def _save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _halves(height: int, width: int, left: int, right: int, dtype: type = np.uint8) -> np.ndarray:
    """Grey image with value ``left`` in the left half and ``right`` in the right half."""
    array = np.full((height, width), left, dtype=dtype)
    array[:, width // 2 :] = right
    return array


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder of assorted images: modes, sizes, nesting, a corrupt file and non-images."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    _save(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8), root / "a_rgb_nonsquare.png")
    _save(np.full((20, 20), 128, dtype=np.uint8), root / "b_grey.png")
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10  # red, almost transparent
    _save(rgba, root / "c_rgba.png")
    _save(np.full((20, 20), 65535, dtype=np.uint16), root / "d_grey16.png")
    _save(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8), root / "nested" / "deeper" / "e.jpg")
    (root / "f_corrupt.png").write_bytes(b"this is not a png at all")
    (root / "notes.txt").write_text("not an image")
    _save(np.zeros((4, 4), dtype=np.uint8), root / ".hidden.png")
    return root


# ---------------------------------------------------------------------------- files


def test_find_images_recursive_sorted_filtered(image_folder: Path) -> None:
    names = [p.relative_to(image_folder).as_posix() for p in find_images(image_folder)]
    assert names == [
        "a_rgb_nonsquare.png",
        "b_grey.png",
        "c_rgba.png",
        "d_grey16.png",
        "f_corrupt.png",
        "nested/deeper/e.jpg",
    ]


def test_find_images_missing_and_empty_name_the_folder(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(DataError, match="not found") as info:
        find_images(missing)
    assert str(missing) in str(info.value)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no image files") as info:
        find_images(empty)
    assert str(empty) in str(info.value)


@pytest.mark.parametrize(
    "name",
    ["a_rgb_nonsquare.png", "b_grey.png", "c_rgba.png", "d_grey16.png", "nested/deeper/e.jpg"],
)
def test_load_image_shape_dtype_range(image_folder: Path, name: str) -> None:
    image = load_image(image_folder / name, SIZE)
    assert image.shape == (3, SIZE, SIZE)
    assert image.dtype == torch.float32
    assert 0.0 <= image.min() <= image.max() <= 1.0


def test_load_image_values_per_mode(image_folder: Path) -> None:
    grey = load_image(image_folder / "b_grey.png", SIZE)
    torch.testing.assert_close(grey, torch.full((3, SIZE, SIZE), 128 / 255))
    rgba = load_image(image_folder / "c_rgba.png", SIZE)  # red at alpha 10/255, over white
    alpha = 10 / 255
    over_white = torch.tensor([200 / 255, 0.0, 0.0]) * alpha + (1 - alpha)
    torch.testing.assert_close(
        rgba, over_white[:, None, None].expand(3, SIZE, SIZE), atol=1 / 255, rtol=0
    )
    deep = load_image(image_folder / "d_grey16.png", SIZE)
    torch.testing.assert_close(deep, torch.ones(3, SIZE, SIZE))


def test_load_image_16bit_keeps_precision(tmp_path: Path) -> None:
    path = _save(np.full((8, 8), 1000, dtype=np.uint16), tmp_path / "x.png")
    image = load_image(path, 8)
    torch.testing.assert_close(image, torch.full((3, 8, 8), 1000 / 65535))


def test_load_image_corrupt_raises_data_error_naming_file(image_folder: Path) -> None:
    path = image_folder / "f_corrupt.png"
    with pytest.raises(DataError) as info:
        load_image(path, SIZE)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    image = Image.new("RGB", (20, 10), (255, 0, 0))
    image.paste((0, 0, 255), (10, 0, 20, 10))  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display: the left half ends on top
    image.save(tmp_path / "exif.png", exif=exif)
    loaded = load_image(tmp_path / "exif.png", 8)
    assert loaded[0, 0].min() > 0.99 and loaded[2, 0].max() < 0.01  # top row red
    assert loaded[2, -1].min() > 0.99 and loaded[0, -1].max() < 0.01  # bottom row blue


def test_centre_crop_int(tmp_path: Path) -> None:
    array = np.zeros((40, 40), dtype=np.uint8)
    array[10:30, 10:30] = 255  # white 20×20 centre on black
    path = _save(array, tmp_path / "centre.png")
    torch.testing.assert_close(load_image(path, 8, crop=20), torch.ones(3, 8, 8))
    assert load_image(path, 8).min() == 0.0  # without the crop the border is in


def test_box_crop_top_left_height_width(tmp_path: Path) -> None:
    array = np.zeros((30, 40, 3), dtype=np.uint8)
    array[5:13, 10:16] = (255, 0, 0)  # red box: top 5, left 10, height 8, width 6
    path = _save(array, tmp_path / "box.png")
    cropped = load_image(path, 4, crop=(5, 10, 8, 6))
    torch.testing.assert_close(cropped[0], torch.ones(4, 4))
    torch.testing.assert_close(cropped[1:], torch.zeros(2, 4, 4))
    shifted = load_image(path, 4, crop=(0, 0, 8, 6))
    assert shifted[0].max() == 0.0


# ---------------------------------------------------------------------------- depth


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        (0, np.uint8, 1.1),
        (255, np.uint8, 0.9),
        (51, np.uint8, 1.1 - 0.2 * 51 / 255),
        (0, np.uint16, 1.1),
        (65535, np.uint16, 0.9),
        (32768, np.uint16, 1.1 - 0.2 * 32768 / 65535),
    ],
)
def test_depth_decoding_exact(tmp_path: Path, value: int, dtype: type, expected: float) -> None:
    path = _save(np.full((4, 4), value, dtype=dtype), tmp_path / "depth.png")
    depth = load_depth(path, 4)
    assert depth.shape == (1, 4, 4)
    assert depth.dtype == torch.float32
    torch.testing.assert_close(depth, torch.full((1, 4, 4), expected), rtol=0, atol=1e-6)


def test_depth_rgb_uses_channel_zero(tmp_path: Path) -> None:
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    array[..., 0], array[..., 1], array[..., 2] = 255, 7, 99
    depth = load_depth(_save(array, tmp_path / "rgb_depth.png"), 4)
    torch.testing.assert_close(depth, torch.full((1, 4, 4), 0.9), rtol=0, atol=1e-6)


def test_depth_16bit_resize_and_crop_keep_range(tmp_path: Path) -> None:
    array = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
    depth = load_depth(_save(array, tmp_path / "ramp.png"), SIZE, crop=(2, 3, 20, 25))
    assert depth.shape == (1, SIZE, SIZE)
    assert 0.9 - 1e-6 <= depth.min() and depth.max() <= 1.1 + 1e-6


# ---------------------------------------------------------------------------- datasets


def test_folder_dataset_items_and_corrupt_skip(
    image_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = ImageFolderDataset(image_folder, SIZE)
    assert len(dataset) == 6
    item = dataset[0]
    assert item is not None
    assert set(item) == {"image", "index", "flip", "path"}
    assert item["image"].shape == (3, SIZE, SIZE)
    assert (item["index"], item["flip"]) == (0, False)
    corrupt = [p.name for p in dataset.paths].index("f_corrupt.png")
    with caplog.at_level(logging.WARNING, logger="unsup3d_cli.data"):
        assert dataset[corrupt] is None
        assert dataset[(corrupt, True)] is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per file
    assert "f_corrupt.png" in warnings[0]
    assert dataset.num_skipped == 1


def test_dataset_index_out_of_range(image_folder: Path) -> None:
    dataset = ImageFolderDataset(image_folder, SIZE)
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_flip_flips_image(tmp_path: Path) -> None:
    _save(_halves(8, 8, 0, 255), tmp_path / "x" / "half.png")
    dataset = ImageFolderDataset(tmp_path / "x", 8)
    plain, flipped = dataset[(0, False)], dataset[(0, True)]
    assert flipped["flip"] is True
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1))
    assert plain["image"][:, :, 0].max() == 0.0 and flipped["image"][:, :, 0].min() == 1.0


@pytest.fixture
def paired_root(tmp_path: Path) -> Path:
    """<root>/train/{image,depth}/ with one nested pair and one image without depth."""
    root = tmp_path / "synface" / "train"
    _save(_halves(8, 8, 10, 250), root / "image" / "001_image.png")
    _save(_halves(8, 8, 0, 255), root / "depth" / "001_depth.png")
    _save(_halves(8, 8, 30, 60), root / "image" / "sub" / "image_002_image.png")
    _save(_halves(8, 8, 255, 0), root / "depth" / "sub" / "depth_002_depth.png")
    _save(_halves(8, 8, 1, 2), root / "image" / "003_image.png")  # no depth: dropped
    return root


def test_paired_naming_rule() -> None:
    image_root, depth_root = Path("/d/image"), Path("/d/depth")
    assert paired_depth_path(
        Path("/d/image/sub/image_7_image.png"), image_root, depth_root, ("image", "depth")
    ) == Path("/d/depth/sub/depth_7_depth.png")
    assert paired_depth_path(
        Path("/d/image/a_rgb.png"), image_root, depth_root, ("rgb", "z")
    ) == Path("/d/depth/a_z.png")


def test_paired_dataset_pairs_and_drops_unpaired(
    paired_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="unsup3d_cli.data"):
        dataset = PairedDepthDataset(paired_root, 8)
    assert len(dataset) == 2
    assert [(i.name, d.name) for i, d in dataset.pairs] == [
        ("001_image.png", "001_depth.png"),
        ("image_002_image.png", "depth_002_depth.png"),
    ]
    assert any("1 of 3" in r.getMessage() for r in caplog.records)
    item = dataset[0]
    assert set(item) == {"image", "depth", "index", "flip", "path"}
    assert item["depth"].shape == (1, 8, 8)
    torch.testing.assert_close(item["depth"][0, 0, 0], torch.tensor(1.1))
    torch.testing.assert_close(item["depth"][0, 0, -1], torch.tensor(0.9))


def test_paired_flip_flips_image_and_depth_together(paired_root: Path) -> None:
    dataset = PairedDepthDataset(paired_root, 8)
    plain, flipped = dataset[(1, False)], dataset[(1, True)]
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1))
    torch.testing.assert_close(flipped["depth"], plain["depth"].flip(-1))
    torch.testing.assert_close(flipped["depth"][0, 0, 0], torch.tensor(1.1))  # was right half


def test_paired_without_any_depth_names_folders(tmp_path: Path) -> None:
    _save(np.zeros((4, 4), dtype=np.uint8), tmp_path / "train" / "image" / "a_image.png")
    with pytest.raises(DataError, match="no image under") as info:
        PairedDepthDataset(tmp_path / "train", 4)
    assert str(tmp_path / "train" / "depth") in str(info.value)


def test_paired_missing_image_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        PairedDepthDataset(tmp_path / "train", 4)
    assert str(tmp_path / "train" / "image") in str(info.value)


# ---------------------------------------------------------------------------- synthetic


def _fake_synthetic(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Install a fake unsup3d_cli.synthetic whose image/depth encode (index, seed)."""
    calls: list[tuple[int, int, int]] = []

    def synthetic_sample(index: int, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append((index, seed, size))
        ramp = torch.linspace(0.0, 1.0, size).expand(size, size)  # (S, S), increasing in x
        image = torch.stack(
            [ramp, torch.full_like(ramp, index / 100), torch.full_like(ramp, seed / 10)]
        )
        return image, (1.1 - 0.2 * ramp)[None]

    module = types.ModuleType("unsup3d_cli.synthetic")
    module.synthetic_sample = synthetic_sample  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "unsup3d_cli.synthetic", module)
    return calls


def test_synthetic_dataset_items_and_flip(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_synthetic(monkeypatch)
    dataset = SyntheticDataset(length=5, seed=3, image_size=8)
    assert len(dataset) == 5
    plain, flipped = dataset[(4, False)], dataset[(4, True)]
    assert calls == [(4, 3, 8), (4, 3, 8)]
    assert set(plain) == {"image", "depth", "index", "flip", "path"}
    assert plain["path"] == "synthetic:3:4"
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1))
    torch.testing.assert_close(flipped["depth"], plain["depth"].flip(-1))


def test_build_dataset_synthetic_seeds_differ_per_split(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_synthetic(monkeypatch)
    cfg = DataConfig(source="synthetic", image_size=8, synthetic_train_size=7, synthetic_val_size=2)
    train, val, test = (build_dataset(cfg, split) for split in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (7, 2, 64)
    for dataset in (train, val, test):
        dataset[0]
    assert len({seed for _, seed, _ in calls}) == 3


def test_real_synthetic_samples_are_deterministic_images_with_depth() -> None:
    dataset = SyntheticDataset(length=2, seed=0, image_size=64)
    first, again = dataset[1], dataset[1]
    assert first["image"].shape == (3, 64, 64) and first["depth"].shape == (1, 64, 64)
    assert 0.0 <= first["image"].min() and first["image"].max() <= 1.0
    assert 0.8 <= first["depth"].min() and first["depth"].max() <= 1.2
    torch.testing.assert_close(first["image"], again["image"])


def test_synthetic_sample_wrong_shape_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("unsup3d_cli.synthetic")
    module.synthetic_sample = lambda i, s, n: (torch.zeros(3, n, n + 1), torch.ones(1, n, n))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "unsup3d_cli.synthetic", module)
    with pytest.raises(ValueError, match="synthetic image"):
        SyntheticDataset(length=1, seed=0, image_size=4)[0]


# ---------------------------------------------------------------------------- build_dataset


def test_build_dataset_folder_and_paired(image_folder: Path, paired_root: Path) -> None:
    folder_cfg = DataConfig(root=str(image_folder.parent), train_split=image_folder.name)
    assert len(build_dataset(folder_cfg, "train")) == 6
    paired_cfg = DataConfig(source="paired", root=str(paired_root.parent), image_size=8)
    assert isinstance(build_dataset(paired_cfg, "train"), PairedDepthDataset)


def test_build_dataset_missing_split_names_path(tmp_path: Path) -> None:
    cfg = DataConfig(root=str(tmp_path))
    with pytest.raises(DataError) as info:
        build_dataset(cfg, "val")
    assert str(tmp_path / "val") in str(info.value)


def test_build_dataset_empty_split_names_path(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    with pytest.raises(DataError, match="no image files") as info:
        build_dataset(DataConfig(root=str(tmp_path)), "test")
    assert str(tmp_path / "test") in str(info.value)


def test_build_dataset_rejects_unknown_split() -> None:
    with pytest.raises(ValueError, match="split"):
        build_dataset(DataConfig(), "holdout")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"source": "webcam"},
        {"crop": 0},
        {"crop": (0, 0, 0, 5)},
        {"crop": (-1, 0, 4, 4)},
        {"image_size": 0},
        {"num_workers": -1},
        {"paired_filename_diff": ("", "depth")},
    ],
)
def test_data_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DataConfig(**kwargs)


# ---------------------------------------------------------------------------- sampler


def test_sampler_is_deterministic_per_seed_and_epoch() -> None:
    sampler = FlipSampler(50, shuffle=True, hflip=True, seed=7)
    sampler.set_epoch(3)
    first = list(sampler)
    sampler.set_epoch(3)
    assert list(sampler) == first
    again = FlipSampler(50, shuffle=True, hflip=True, seed=7)
    again.set_epoch(3)
    assert list(again) == first
    sampler.set_epoch(4)
    assert list(sampler) != first
    other_seed = FlipSampler(50, shuffle=True, hflip=True, seed=8)
    other_seed.set_epoch(3)
    assert list(other_seed) != first


def test_sampler_permutation_and_flips() -> None:
    sampler = FlipSampler(64, shuffle=True, hflip=True, seed=0)
    order = list(sampler)
    assert sorted(i for i, _ in order) == list(range(64))
    assert [i for i, _ in order] != list(range(64))
    flips = [f for _, f in order]
    assert 10 < sum(flips) < 54


def test_sampler_without_shuffle_or_flip() -> None:
    sampler = FlipSampler(5, shuffle=False, hflip=False, seed=1)
    assert list(sampler) == [(i, False) for i in range(5)]


def test_sampler_resume_yields_exact_tail() -> None:
    sampler = FlipSampler(23, shuffle=True, hflip=True, seed=5, batch_size=4)
    sampler.set_epoch(2)
    full = list(sampler)
    start = sampler.start_index_of_batch(3)
    sampler.set_epoch(2, start_index=start)
    assert start == 12
    assert list(sampler) == full[12:]
    assert len(sampler) == 11
    sampler.set_epoch(2)
    assert list(sampler) == full
    with pytest.raises(ValueError):
        sampler.set_epoch(2, start_index=24)


# ---------------------------------------------------------------------------- loader


def test_collate_drops_none_and_all_none_is_none() -> None:
    item = {"image": torch.zeros(3, 2, 2), "index": 4, "flip": True, "path": "p"}
    batch = collate_items([None, item, None])
    assert batch is not None
    assert batch["image"].shape == (1, 3, 2, 2)
    assert batch["index"].tolist() == [4] and batch["index"].dtype == torch.int64
    assert batch["flip"].dtype == torch.bool and batch["flip"].tolist() == [True]
    assert "depth" not in batch
    assert collate_items([None, None]) is None


def test_loader_skips_corrupt_and_batches(image_folder: Path) -> None:
    dataset = ImageFolderDataset(image_folder, SIZE)
    loader = make_loader(dataset, 4, shuffle=True, hflip=True, seed=0, drop_last=False)
    batches = [b for b in loader if b is not None]
    assert sum(len(b["path"]) for b in batches) == 5  # 6 files, one corrupt
    for batch in batches:
        n = batch["image"].shape[0]
        assert batch["image"].shape == (n, 3, SIZE, SIZE)
        assert batch["index"].shape == (n,) and batch["flip"].shape == (n,)
    assert not any(path.endswith("f_corrupt.png") for b in batches for path in b["path"])


def test_loader_paired_batches_have_depth(paired_root: Path) -> None:
    loader = make_loader(PairedDepthDataset(paired_root, 8), 2, shuffle=False, hflip=False, seed=0)
    (batch,) = list(loader)
    assert batch["depth"].shape == (2, 1, 8, 8)
    assert batch["index"].tolist() == [0, 1]


def test_loader_resume_gives_tail_of_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_synthetic(monkeypatch)
    dataset = SyntheticDataset(length=10, seed=0, image_size=4)
    loader = make_loader(dataset, 3, shuffle=True, hflip=True, seed=11, drop_last=True)
    loader.sampler.set_epoch(1)
    full = [(b["index"].tolist(), b["flip"].tolist()) for b in loader]
    assert len(full) == 3
    loader.sampler.set_epoch(1, start_index=loader.sampler.start_index_of_batch(1))
    tail = [(b["index"].tolist(), b["flip"].tolist()) for b in loader]
    assert tail == full[1:]


def test_loader_too_small_for_one_batch(image_folder: Path) -> None:
    dataset = ImageFolderDataset(image_folder, SIZE)
    with pytest.raises(DataError, match="fewer than one batch") as info:
        make_loader(dataset, 7, shuffle=True, hflip=False, seed=0, drop_last=True)
    assert str(image_folder) in str(info.value)
