"""Losses against hand computations, masks, the flip schedule and the VGG backbone."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from unsup3d_cli.losses import (
    EPS,
    LossConfig,
    VGGFeatures,
    _split_channels,
    depth_smoothness,
    flip_weight,
    gradient_nll,
    perceptual_nll,
    photometric_nll,
    self_view_loss,
    total_loss,
    translation_centre_prior,
    view_centre_prior,
)
from unsup3d_cli.model import ModelConfig, Unsup3D
from unsup3d_cli.render import Renderer


def test_photometric_without_confidence_is_the_masked_l1_in_signed_units():
    recon = torch.zeros(1, 3, 2, 2)
    target = torch.tensor([0.1, 0.2, 0.3, 0.4]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0]).view(1, 1, 2, 2)
    expected = 2 * (0.1 + 0.2 + 0.4) / 3  # |Δ| in [-1, 1] units, masked mean over pixels
    assert photometric_nll(recon, target, mask).item() == pytest.approx(expected)
    changed = target.clone()
    changed[..., 1, 0] = 0.9  # a masked-out pixel does not matter
    assert photometric_nll(recon, changed, mask).item() == pytest.approx(expected)


def test_photometric_with_confidence_is_the_laplace_nll():
    recon, target = torch.zeros(1, 3, 1, 2), torch.full((1, 3, 1, 2), 0.25)
    sigma = torch.tensor([0.5, 2.0]).view(1, 1, 1, 2)
    mask = torch.ones(1, 1, 1, 2)
    per_pixel = [math.sqrt(2) * 0.5 / (s + EPS) + math.log(s + EPS) for s in (0.5, 2.0)]
    value = photometric_nll(recon, target, mask, sigma).item()
    assert value == pytest.approx(sum(per_pixel) / 2, rel=1e-6)


def _naive_gradient_nll(recon, target, mask, sigma=None):
    """gradient_nll pair by pair, in Python loops."""
    _, channels, height, width = recon.shape
    means = []
    for dy, dx in ((0, 1), (1, 0)):
        num = den = 0.0
        for y in range(height - dy):
            for x in range(width - dx):
                w = float(mask[0, 0, y, x] * mask[0, 0, y + dy, x + dx])
                for c in range(channels):
                    a = 2 * (recon[0, c, y, x] - target[0, c, y, x])
                    b = 2 * (recon[0, c, y + dy, x + dx] - target[0, c, y + dy, x + dx])
                    loss = abs(float(b - a))
                    if sigma is not None:
                        s = 0.5 * float(sigma[0, 0, y, x] + sigma[0, 0, y + dy, x + dx])
                        loss = math.sqrt(2) * loss / (s + EPS) + math.log(s + EPS)
                    num, den = num + w * loss, den + w
        means.append(num / den)
    return 0.5 * sum(means)


def test_gradient_nll_of_a_ramp_and_an_offset():
    ramp = torch.linspace(0.0, 0.6, 7).view(1, 1, 1, 7).expand(1, 3, 5, 7)
    mask = torch.ones(1, 1, 5, 7)
    # horizontal differences 0.1 ([0, 1] units), 0.2 in [-1, 1] units; vertical ones 0
    assert gradient_nll(torch.zeros_like(ramp), ramp, mask).item() == pytest.approx(0.1)
    assert gradient_nll(ramp + 0.3, ramp, mask).item() == pytest.approx(0.0, abs=1e-7)
    sigma = torch.full((1, 1, 5, 7), 0.5)
    horizontal = math.sqrt(2) * 0.2 / (0.5 + EPS) + math.log(0.5 + EPS)
    vertical = math.log(0.5 + EPS)
    value = gradient_nll(torch.zeros_like(ramp), ramp, mask, sigma).item()
    assert value == pytest.approx(0.5 * (horizontal + vertical), rel=1e-6)


def test_gradient_nll_matches_a_naive_loop_with_a_mask_and_confidence():
    torch.manual_seed(0)
    recon, target = torch.rand(1, 2, 4, 5), torch.rand(1, 2, 4, 5)
    mask = (torch.rand(1, 1, 4, 5) > 0.3).float()
    sigma = 0.5 + torch.rand(1, 1, 4, 5)
    for s in (None, sigma):
        expected = _naive_gradient_nll(recon, target, mask, s)
        assert gradient_nll(recon, target, mask, s).item() == pytest.approx(expected, rel=1e-5)
    changed = target.clone()
    changed[0, :, 0, 0] += 0.5  # only pairs with a masked-out pixel see this one
    mask[0, 0, 0, 0] = 0.0
    expected = gradient_nll(recon, target, mask, sigma)
    torch.testing.assert_close(gradient_nll(recon, changed, mask, sigma), expected)


def test_perceptual_uses_the_average_pooled_mask_and_gaussian_nll():
    features_a = torch.zeros(1, 2, 2, 2)
    features_b = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2).expand(1, 2, 2, 2)
    mask = torch.ones(1, 1, 4, 4)
    mask[..., :2, :2] = 0.0  # top-left cell fully out
    mask[..., 0, 2] = 0.0  # top-right cell three quarters in
    weights = torch.tensor([0.0, 0.75, 1.0, 1.0])
    squares = torch.tensor([1.0, 4.0, 9.0, 16.0])
    expected = (weights * squares).sum() / weights.sum()
    assert perceptual_nll(features_a, features_b, mask).item() == pytest.approx(expected.item())
    sigma = torch.full((1, 1, 2, 2), 3.0)
    nll = squares / (2 * 9.0 + EPS) + math.log(3.0 + EPS)
    expected_nll = (weights * nll).sum() / weights.sum()
    value = perceptual_nll(features_a, features_b, mask, sigma).item()
    assert value == pytest.approx(expected_nll.item(), rel=1e-6)


def test_flip_weight_schedule_is_one_before_the_start_epoch():
    cat = LossConfig(lam_flip=0.5, lam_flip_start_epoch=10)
    assert [flip_weight(cat, e) for e in (0, 9, 10, 50)] == [1.0, 1.0, 0.5, 0.5]
    assert flip_weight(LossConfig(), 0) == 0.5


def test_depth_smoothness_of_a_ramp():
    ramp = torch.linspace(0.9, 1.1, 11).view(1, 1, 1, 11).expand(1, 1, 5, 11)
    assert depth_smoothness(ramp, 0.2).item() == pytest.approx(0.02 / 0.2)


def test_gradcheck_losses():
    recon = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    sigma = (0.5 + torch.rand(1, 1, 4, 4, dtype=torch.float64)).requires_grad_()
    mask = (torch.rand(1, 1, 4, 4, dtype=torch.float64) > 0.3).double()
    assert gradcheck(lambda r, s: photometric_nll(r, target, mask, s), (recon, sigma))
    assert gradcheck(lambda r, s: gradient_nll(r, target, mask, s), (recon, sigma))
    feats = torch.rand(1, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    small_sigma = (0.5 + torch.rand(1, 1, 2, 2, dtype=torch.float64)).requires_grad_()
    assert gradcheck(
        lambda f, s: perceptual_nll(f, target[:, :2, :2, :2], mask, s), (feats, small_sigma)
    )


def test_vgg_features_are_frozen_and_load_state_dicts():
    vgg = VGGFeatures()
    assert not any(p.requires_grad for p in vgg.parameters())
    out = vgg(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 256, 16, 16) and (out >= 0).all()  # after relu3_3
    vgg.train()
    assert not vgg.training
    full = {f"features.{k}": v + 1 for k, v in vgg.layers.state_dict().items()}
    full["classifier.0.weight"] = torch.zeros(1)
    loaded = VGGFeatures(full)
    torch.testing.assert_close(loaded.layers[0].weight, vgg.layers[0].weight + 1)


def test_vgg_features_in_bfloat16_match_float32():
    torch.manual_seed(0)
    vgg = VGGFeatures()
    image = torch.rand(4, 3, 64, 64, requires_grad=True)
    reference = vgg(image)
    (grad_reference,) = torch.autograd.grad(reference.square().mean(), image)
    vgg.set_precision("bf16")
    seen = []
    vgg.layers[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    features = vgg(image)
    (grad,) = torch.autograd.grad(features.square().mean(), image)
    assert seen == [torch.bfloat16] and features.dtype == torch.float32
    assert (features - reference).norm() / reference.norm() < 2e-2  # 0.5% measured
    assert F.cosine_similarity(grad.flatten(), grad_reference.flatten(), dim=0) > 0.98  # 0.996
    with pytest.raises(ValueError, match="precision"):
        vgg.set_precision("fp16")


def test_total_loss_combines_the_terms_with_their_weights():
    model = Unsup3D(
        ModelConfig(width=16, encoder_width=16, depth_zdim=32, confidence_zdim=16), Renderer()
    )
    image = torch.rand(2, 3, 64, 64)
    decomp = model(image)
    recon = model.reconstruct(decomp)
    cfg = LossConfig(
        lam_perc=0.3, lam_flip=0.5, lam_depth_smooth=0.1, lam_view_centre=2.0, lam_gradient=0.7
    )
    vgg = VGGFeatures()
    terms = total_loss(image, decomp, recon, cfg, vgg, epoch=3, depth_span=0.2)
    # each term recomputed from its own function, on the branch and σ channel it belongs to
    recon_image, recon_flip = recon.image[:2], recon.image[2:]
    sigma, sigma_p = decomp.confidence, decomp.perceptual_confidence
    expected = {
        "photometric": photometric_nll(recon_image, image, recon.mask, sigma[:, :1]),
        "photometric_flip": photometric_nll(recon_flip, image, recon.mask, sigma[:, 1:]),
        "gradient": gradient_nll(recon_image, image, recon.mask, sigma[:, :1]),
        "gradient_flip": gradient_nll(recon_flip, image, recon.mask, sigma[:, 1:]),
        "perceptual": perceptual_nll(vgg(recon_image), vgg(image), recon.mask, sigma_p[:, :1]),
        "perceptual_flip": perceptual_nll(vgg(recon_flip), vgg(image), recon.mask, sigma_p[:, 1:]),
        "depth_smooth": depth_smoothness(decomp.depth_unbordered, 0.2),
        "view_centre": view_centre_prior(decomp.view_angles),
    }
    for name, value in expected.items():
        torch.testing.assert_close(getattr(terms, name), value, msg=name)
    perceptual = expected["perceptual"] + 0.5 * expected["perceptual_flip"]
    manual = expected["photometric"] + 0.5 * expected["photometric_flip"] + 0.3 * perceptual
    manual = manual + 0.1 * expected["depth_smooth"] + 2.0 * expected["view_centre"]
    manual = manual + 0.7 * (expected["gradient"] + 0.5 * expected["gradient_flip"])
    torch.testing.assert_close(terms.total, manual)
    assert terms.perceptual != 0 and terms.depth_smooth > 0 and terms.view_centre > 0
    assert terms.gradient != 0 and terms.gradient_flip != 0
    without = total_loss(image, decomp, recon, cfg, None, epoch=3, depth_span=0.2)
    assert without.perceptual == 0 and without.perceptual_flip == 0
    names = {"photometric", "photometric_flip", "perceptual", "perceptual_flip"}
    names |= {"gradient", "gradient_flip"}
    assert set(terms.as_dict()) == names | {
        "depth_smooth", "view_centre", "translation_centre", "self_view", "depth_supervised",
        "total", "raster_dropped",
    }  # fmt: skip
    assert terms.depth_supervised == 0
    off = total_loss(image, decomp, recon, LossConfig(), None, epoch=3, depth_span=0.2)
    assert off.gradient == 0 and off.gradient_flip == 0
    with pytest.raises(ValueError, match="loss.lam_gradient"):
        LossConfig(lam_gradient=-1.0)


def test_confidence_floor_adds_to_every_sigma_in_the_objective() -> None:
    torch.manual_seed(0)
    model = Unsup3D(
        ModelConfig(width=16, encoder_width=16, depth_zdim=32, confidence_zdim=16), Renderer()
    )
    image = torch.rand(2, 3, 64, 64)
    decomp = model(image)
    recon = model.reconstruct(decomp)
    weights = {"lam_perc": 0.3, "lam_flip": 0.5, "lam_gradient": 0.7}
    vgg = VGGFeatures()
    floored = total_loss(
        image,
        decomp,
        recon,
        LossConfig(confidence_floor=0.25, **weights),
        vgg,
        epoch=0,
        depth_span=0.2,
    )
    # the same objective with the floor moved into the predicted maps
    shifted = replace(
        decomp,
        confidence=decomp.confidence + 0.25,
        perceptual_confidence=decomp.perceptual_confidence + 0.25,
    )
    reference = total_loss(
        image, shifted, recon, LossConfig(**weights), vgg, epoch=0, depth_span=0.2
    )
    for name in reference.as_dict():
        torch.testing.assert_close(getattr(floored, name), getattr(reference, name), msg=name)
    plain = total_loss(image, decomp, recon, LossConfig(**weights), vgg, epoch=0, depth_span=0.2)
    assert floored.photometric != plain.photometric and floored.perceptual != plain.perceptual
    # one pixel, analytic: error |r − t| = 0.3 in [0, 1] units, σ = 0.05, floor 0.1
    sigma = torch.full((1, 1, 1, 1), 0.05, dtype=torch.float64, requires_grad=True)
    recon_px = torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64)
    target_px = torch.full((1, 3, 1, 1), 0.8, dtype=torch.float64)
    mask = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    value = photometric_nll(recon_px, target_px, mask, _split_channels(sigma, 0.1)[0])
    s = 0.15 + EPS
    assert float(value.detach()) == pytest.approx(math.sqrt(2) * 0.6 / s + math.log(s))
    (grad,) = torch.autograd.grad(value, sigma)
    assert float(grad) == pytest.approx(-math.sqrt(2) * 0.6 / s**2 + 1 / s)
    assert _split_channels(None, 0.1) == (None, None)
    with pytest.raises(ValueError, match="loss.confidence_floor"):
        LossConfig(confidence_floor=-0.1)


def test_view_centre_prior_is_the_squared_norm_of_the_batch_mean() -> None:
    angles = torch.tensor([[0.1, -0.4, 0.2], [0.3, 0.4, -0.2]], dtype=torch.float64)
    assert float(view_centre_prior(angles)) == pytest.approx(0.2**2)  # mean (0.2, 0, 0)
    assert float(view_centre_prior(torch.cat([angles, -angles]))) == pytest.approx(0.0, abs=1e-30)
    angles.requires_grad_()
    assert gradcheck(view_centre_prior, (angles,))
    view_centre_prior(angles).backward()
    expected = 2 * angles.detach().mean(0) / len(angles)  # d/dx_b of ‖mean‖²
    torch.testing.assert_close(angles.grad, expected.expand_as(angles))
    with pytest.raises(ValueError, match="view_angles"):
        view_centre_prior(torch.zeros(2, 6))


def test_translation_centre_prior_is_the_squared_norm_of_the_mean_xy_shift_in_range_units():
    shift = torch.tensor([[0.03, -0.01, 0.5], [0.01, 0.01, -0.2]], dtype=torch.float64)
    # mean (0.02, 0, ·) in units of 0.1: 0.2² (z is not a gauge here and is left out)
    assert float(translation_centre_prior(shift, 0.1)) == pytest.approx(0.2**2)
    flipped = torch.cat([shift, -shift])
    assert float(translation_centre_prior(flipped, 0.1)) == pytest.approx(0.0, abs=1e-30)
    shift.requires_grad_()
    assert gradcheck(lambda t: translation_centre_prior(t, 0.1), (shift,))
    translation_centre_prior(shift, 0.1).backward()
    expected = 2 * shift.detach().mean(0) / len(shift) / 0.1**2  # d/dt_b of ‖mean / r‖²
    expected[2] = 0.0
    torch.testing.assert_close(shift.grad, expected.expand_as(shift))
    with pytest.raises(ValueError, match="view_translation"):
        translation_centre_prior(torch.zeros(2, 2), 0.1)
    with pytest.raises(ValueError, match="translation_range"):
        translation_centre_prior(torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="loss.lam_translation_centre"):
        LossConfig(lam_translation_centre=-1.0)


def test_total_loss_adds_the_translation_prior_only_with_a_weight_and_a_range() -> None:
    model = Unsup3D(
        ModelConfig(width=16, encoder_width=16, depth_zdim=32, confidence_zdim=16), Renderer()
    )
    image = torch.rand(2, 3, 64, 64)
    decomp = model(image)
    decomp = replace(decomp, view_translation=decomp.view_translation + 0.05)  # off-centre
    recon = model.reconstruct(decomp)
    cfg = LossConfig(lam_perc=0.0, lam_translation_centre=3.0)
    terms = total_loss(image, decomp, recon, cfg, None, epoch=0, depth_span=0.2,
                       translation_range=0.1)  # fmt: skip
    prior = translation_centre_prior(decomp.view_translation, 0.1)
    torch.testing.assert_close(terms.translation_centre, prior)
    assert float(prior.detach()) > 0.4  # about 0.5² per axis
    without = total_loss(image, decomp, recon, LossConfig(lam_perc=0.0), None, epoch=0,
                         depth_span=0.2, translation_range=0.1)  # fmt: skip
    torch.testing.assert_close(terms.total, without.total + 3.0 * prior)
    no_range = total_loss(image, decomp, recon, cfg, None, epoch=0, depth_span=0.2)
    assert no_range.translation_centre == 0
    torch.testing.assert_close(no_range.total, without.total)


def test_self_view_loss_is_the_l1_of_the_views():
    pred = torch.tensor([[0.1, 0.5, 0.0], [0.0, -0.2, 0.1]], dtype=torch.float64)
    true = torch.tensor([[0.0, 0.3, 0.0], [0.0, -0.1, 0.1]], dtype=torch.float64)
    pred_t = torch.tensor([[0.01, 0.0, 0.7], [0.0, -0.02, 0.0]], dtype=torch.float64)
    true_t = torch.zeros(2, 3, dtype=torch.float64)
    angles_l1 = (0.1 + 0.2 + 0.1) / 6
    shift_l1 = (0.01 + 0.02) / 4  # z left out
    value = self_view_loss(pred, pred_t, true, true_t, 0.1)
    assert float(value) == pytest.approx(angles_l1 + shift_l1 / 0.1)
    assert float(self_view_loss(pred, pred_t, true, true_t, 0.0)) == pytest.approx(angles_l1)
    pred.requires_grad_()
    self_view_loss(pred, pred_t, true, true_t, 0.1).backward()
    torch.testing.assert_close(pred.grad, (pred - true).detach().sign() / 6)
    with pytest.raises(ValueError, match="pred_angles"):
        self_view_loss(torch.zeros(2, 2), pred_t, true, true_t, 0.1)
