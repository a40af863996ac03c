"""Test-time refinement: render-and-compare of viewpoint, light and residuals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from unsup3d_cli.model import Reconstruction
from unsup3d_cli.reconstruct import ReconstructOptions
from unsup3d_cli.refine import photometric_error, refine


@pytest.fixture
def tiny_model(tiny_checkpoint: Path):
    from unsup3d_cli.api import load_model

    model, _ = load_model(tiny_checkpoint, "cpu")
    return model


def _faces(count: int) -> torch.Tensor:
    from unsup3d_cli.synthetic import synthetic_sample

    return torch.stack([synthetic_sample(i, 2, 64)[0] for i in range(count)]).float()


def _reconstruction(image: torch.Tensor, mask: torch.Tensor) -> Reconstruction:
    batch = image.shape[0]
    zeros = torch.zeros(2 * batch, 1, 8, 8)
    return Reconstruction(
        canonical_depth=zeros, canonical_albedo=image, canonical_normal=zeros,
        shading=zeros, canonical_image=image, view_depth=zeros, view_mask=zeros,
        mask=mask, image=image,
    )  # fmt: skip


def test_photometric_error_hand_computed() -> None:
    target = torch.full((2, 3, 8, 8), 0.5)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :4] = 1  # top half valid
    rendered = torch.cat([target, target]).clone()  # (2B, 3, 8, 8)
    rendered[0, :, :4] += 0.2  # image 0, original branch: off by 0.2 where valid
    rendered[3, :, 4:] += 0.9  # image 1, mirrored branch: off only where invalid
    error = photometric_error(target, _reconstruction(rendered, mask))
    torch.testing.assert_close(error, torch.tensor([0.1, 0.0]))


def test_refine_lowers_the_error_on_a_synthetic_face(tiny_model) -> None:
    image = _faces(1)
    with torch.inference_mode():  # as the reconstruct command calls it
        decomp = tiny_model(image)
        refined, before, after = refine(tiny_model, image, decomp, steps=6)
        check = photometric_error(image, tiny_model.reconstruct(refined))
    assert before.shape == after.shape == (1,)
    assert after.item() < 0.9 * before.item()
    torch.testing.assert_close(check, after)  # the returned decomposition has that error
    assert not refined.view_angles.requires_grad
    torch.testing.assert_close(refined.depth, decomp.depth)  # no residuals: shape unchanged


def test_residuals_lower_the_error_further(tiny_model) -> None:
    image = _faces(1)
    with torch.no_grad():
        decomp = tiny_model(image)
    _, _, plain = refine(tiny_model, image, decomp, steps=6)
    refined, before, after = refine(tiny_model, image, decomp, steps=6, residuals=True)
    assert after.item() < plain.item() < before.item()
    span = tiny_model.cfg.max_depth - tiny_model.cfg.min_depth
    change = (refined.depth_unbordered - decomp.depth_unbordered).abs().max().item()
    assert 0 < change <= 0.1 * span + 1e-6  # small and bounded


def test_refine_leaves_the_model_alone_and_images_independent(tiny_model) -> None:
    weights = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    images = _faces(2)
    with torch.no_grad():
        decomp = tiny_model(images)
    both, _, after_both = refine(tiny_model, images, decomp, steps=3)
    first = replace(decomp, **{
        f: getattr(decomp, f)[:1] for f in ("depth", "depth_unbordered", "albedo", "ambient",
        "diffuse", "light_direction", "view_angles", "view_translation", "confidence",
        "perceptual_confidence")
    })  # fmt: skip
    alone, _, after_alone = refine(tiny_model, images[:1], first, steps=3)
    torch.testing.assert_close(after_both[:1], after_alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both.view_angles[:1], alone.view_angles, rtol=1e-4, atol=1e-5)
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert all(p.grad is None for p in tiny_model.parameters())


def test_zero_steps_is_the_prediction(tiny_model) -> None:
    image = _faces(1)
    with torch.no_grad():
        decomp = tiny_model(image)
    refined, before, after = refine(tiny_model, image, decomp, steps=0)
    torch.testing.assert_close(before, after)
    torch.testing.assert_close(refined.view_angles, decomp.view_angles)
    with pytest.raises(ValueError, match="steps"):
        refine(tiny_model, image, decomp, steps=-1)


def test_refine_fits_the_size_of_a_model_that_predicts_one() -> None:
    from unsup3d_cli.model import ModelConfig, Unsup3D
    from unsup3d_cli.render import Renderer

    torch.manual_seed(0)
    cfg = ModelConfig(width=16, encoder_width=16, depth_zdim=32, confidence_zdim=16,
                      scale_range=0.3)  # fmt: skip
    model = Unsup3D(cfg, Renderer()).eval()
    image = _faces(2)
    with torch.no_grad():
        decomp = model(image)
    same, _, _ = refine(model, image, decomp, steps=0)
    torch.testing.assert_close(same.view_scale, decomp.view_scale)  # decode ∘ encode = id
    refined, before, after = refine(model, image, decomp, steps=4)
    assert (after <= before).all() and after.sum() < before.sum()
    assert not torch.equal(refined.view_scale, decomp.view_scale)
    with torch.no_grad():
        check = photometric_error(image, model.reconstruct(refined))
    torch.testing.assert_close(check, after)


def test_reconstruct_refine_writes_before_and_after(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import json

    from torchvision.utils import save_image

    from unsup3d_cli import api

    save_image(_faces(1), tmp_path / "face.png")
    api.reconstruct(tiny_checkpoint, [tmp_path / "face.png"], tmp_path / "out",
                    ReconstructOptions(refine_steps=4), device="cpu")  # fmt: skip
    error = json.loads((tmp_path / "out" / "face" / "result.json").read_text())
    objective = error["refinement_objective"]  # both reconstructions: what refine lowers
    assert objective["after"] < objective["before"]
    error = error["photometric_error"]  # reconstruction.png against input.png
    assert error["after"] < error["before"]
