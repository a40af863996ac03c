"""Unsup3D networks, output decoding and the canonical/mirror reconstruction."""

from __future__ import annotations

import math

import pytest
import torch

from unsup3d_cli.geometry import euler_to_rotation
from unsup3d_cli.model import Decomposition, ModelConfig, Reconstruction, Unsup3D
from unsup3d_cli.model.decomposition import (
    decode_depth,
    decode_light,
    decode_view,
    depth_to_raw,
    fill_border,
)
from unsup3d_cli.model.networks import ConfidenceNet, Encoder, EncoderDecoder, GroupNorm
from unsup3d_cli.model.unsup3d import dome_template
from unsup3d_cli.render import Renderer

TINY = ModelConfig(width=16, encoder_width=16, depth_zdim=32, confidence_zdim=16)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_networks_have_the_reference_parameter_counts():
    model = Unsup3D(ModelConfig(), Renderer())
    assert _count(model.depth_net) == 12_979_648
    assert _count(model.albedo_net) == 12_982_848
    assert _count(model.light_net) == 1_739_264
    assert _count(model.view_net) == 1_739_776
    assert _count(model.confidence_net) == 7_678_208
    assert _count(model) == 37_119_744
    assert all(not isinstance(m, torch.nn.Conv2d) or m.bias is None for m in model.modules())


@pytest.mark.parametrize("batch", [1, 3])
def test_forward_shapes_and_ranges(batch):
    model = Unsup3D(TINY, Renderer())
    decomp = model(torch.rand(batch, 3, 64, 64))
    assert decomp.depth.shape == (batch, 1, 64, 64)
    assert decomp.albedo.shape == (batch, 3, 64, 64)
    assert decomp.confidence.shape == (batch, 2, 64, 64)
    assert decomp.perceptual_confidence.shape == (batch, 2, 16, 16)
    inner = decomp.depth[..., 2:-2]
    assert (inner > 0.9).all() and (inner < 1.1).all()
    assert torch.allclose(decomp.depth[..., :2], torch.tensor(1.04))
    assert torch.allclose(decomp.depth[..., -2:], torch.tensor(1.04))
    assert ((decomp.albedo >= 0) & (decomp.albedo <= 1)).all()
    torch.testing.assert_close(decomp.light_direction.norm(dim=1), torch.ones(batch))
    assert (decomp.light_direction[:, 2] > 0.5).all()
    assert (decomp.view_angles.abs() <= math.radians(60)).all()
    assert (decomp.view_translation[:, 2] == 0).all()  # z range 0 for faces
    assert (decomp.confidence > 0).all()


@pytest.mark.parametrize("centring", ["mean", "none"])
def test_flat_depth_init_starts_flat_and_still_learns(centring):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY.__dict__, "flat_depth_init": True, "depth_centring": centring})
    model = Unsup3D(cfg, Renderer())
    image = torch.rand(2, 3, 64, 64)
    depth = model(image).depth_unbordered
    torch.testing.assert_close(depth, torch.ones_like(depth))  # raw 0 → (min + max) / 2
    (depth * torch.rand_like(depth)).sum().backward()  # the zeroed layer's input is not 0
    assert model.depth_net.output_layer.weight.grad.abs().sum() > 0
    torch.manual_seed(0)
    noisy = Unsup3D(TINY, Renderer())(image).depth_unbordered
    assert noisy.std() > 1e-3  # the default init is not flat


def test_bf16_precision_runs_the_networks_in_bfloat16_and_decodes_in_float32():
    torch.manual_seed(0)
    model = Unsup3D(TINY, Renderer()).eval()
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        exact = model(image)
        model.set_precision("bf16")
        seen = []
        hook = model.depth_net.output_layer.register_forward_hook(
            lambda module, inputs, output: seen.append(output.dtype)
        )
        approx = model(image)
        hook.remove()
    assert seen == [torch.bfloat16]  # the convolutions did run in bfloat16
    for name in ("depth", "albedo", "ambient", "diffuse", "light_direction", "view_angles",
                 "confidence"):  # fmt: skip
        value, reference = getattr(approx, name), getattr(exact, name)
        assert value.dtype == torch.float32, name
        # bfloat16 keeps 8 bits of mantissa: outputs of order 1 move by a few 1e-3 at most.
        torch.testing.assert_close(value, reference, rtol=0.05, atol=0.02, msg=name)
    assert not torch.equal(approx.albedo, exact.albedo)
    with pytest.raises(ValueError, match="precision"):
        model.set_precision("fp16")


def test_group_norm_computes_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    norm = GroupNorm(4, 16)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 16, 8, 8).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = norm(x)
    assert y.dtype == torch.float32
    reference = torch.nn.functional.group_norm(x.detach().float(), 4, norm.weight, norm.bias)
    torch.testing.assert_close(y, reference)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16
    assert set(norm.state_dict()) == set(torch.nn.GroupNorm(4, 16).state_dict())


def test_wrong_input_size_is_a_value_error():
    with pytest.raises(ValueError, match="image"):
        Unsup3D(TINY, Renderer())(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of 4"):
        EncoderDecoder(1, width=18)


def test_network_output_shapes():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert Encoder(6, 8)(x).shape == (2, 6)
    assert EncoderDecoder(3, 8, 16, use_tanh=True)(x).abs().max() <= 1
    photometric, perceptual = ConfidenceNet(8, 16)(x)
    assert photometric.shape == (2, 2, 64, 64) and perceptual.shape == (2, 2, 16, 16)


def test_decoders_follow_the_reference_formulas():
    raw = torch.randn(2, 1, 6, 6)
    depth = decode_depth(raw, 0.9, 1.1)
    torch.testing.assert_close(decode_depth(raw + 5.0, 0.9, 1.1), depth)  # mean removed
    centred = raw - raw.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(depth, 1.0 + 0.1 * torch.tanh(centred))
    uncentred = decode_depth(raw, 0.9, 1.1, "none")
    torch.testing.assert_close(uncentred, 1.0 + 0.1 * torch.tanh(raw))
    torch.testing.assert_close(
        decode_depth(torch.zeros(1, 1, 2, 2), 0.8, 1.0, "none"), torch.full((1, 1, 2, 2), 0.9)
    )
    with pytest.raises(ValueError, match="centring"):
        decode_depth(raw, 0.9, 1.1, "median")
    with pytest.raises(ValueError, match="model.depth_centring"):
        Unsup3D(ModelConfig(**{**TINY.__dict__, "depth_centring": "median"}), Renderer())
    filled = fill_border(depth, 1.04)
    assert torch.equal(filled[..., 2:-2], depth[..., 2:-2]) and not torch.equal(filled, depth)
    ambient, diffuse, direction = decode_light(
        torch.tensor([[0.0, 1.0, 1.0, 0.0]]), (0, 1), (0.5, 1)
    )
    assert ambient.item() == pytest.approx(0.5) and diffuse.item() == pytest.approx(1.0)
    torch.testing.assert_close(direction, torch.tensor([[1.0, 0.0, 1.0]]) / math.sqrt(2))
    raw_view = torch.tensor([[1.0, -0.5, 0.0, 1.0, -1.0, 1.0]])
    angles, shift, scale = decode_view(raw_view, 60.0, 0.1, 0.0)
    torch.testing.assert_close(angles, torch.tensor([[math.pi / 3, -math.pi / 6, 0.0]]))
    torch.testing.assert_close(shift, torch.tensor([[0.1, -0.1, 0.0]]))
    assert scale is None
    raw_view = torch.cat([raw_view.expand(3, 6), torch.tensor([[1.0], [-1.0], [0.5]])], dim=1)
    _, _, scale = decode_view(raw_view, 60.0, 0.1, 0.0, 0.25)  # (1 + r) ** o
    torch.testing.assert_close(scale, torch.tensor([1.25, 0.8, 1.25**0.5]))
    with pytest.raises(ValueError, match="raw view"):
        decode_view(raw_view[:, :6], 60.0, 0.1, 0.0, 0.25)


def _symmetric_decomposition(batch: int = 2, view=None) -> Decomposition:
    x = torch.linspace(-1, 1, 64)
    bump = 1.05 - 0.1 * torch.exp(-(x[None, :] ** 2 + x[:, None] ** 2) / 0.3)  # symmetric in x
    depth = fill_border(bump.expand(batch, 1, 64, 64), 1.04)
    albedo = (0.5 + 0.4 * torch.cos(3 * x)[None, :] * torch.linspace(0, 1, 64)[:, None]).expand(
        batch, 3, 64, 64
    )
    return Decomposition(
        depth=depth, depth_unbordered=depth, albedo=albedo,
        ambient=torch.full((batch,), 0.4), diffuse=torch.full((batch,), 0.6),
        light_direction=torch.tensor([[0.0, 0.0, 1.0]]).expand(batch, 3),
        view_angles=torch.zeros(batch, 3) if view is None else view,
        view_translation=torch.zeros(batch, 3),
    )  # fmt: skip


def test_identity_view_reconstructs_the_canonical_image():
    model = Unsup3D(TINY, Renderer())
    recon = model.reconstruct(_symmetric_decomposition())
    assert recon.image.shape == (4, 3, 64, 64) and recon.mask.shape == (2, 1, 64, 64)
    assert recon.mask.all()
    torch.testing.assert_close(recon.image, recon.canonical_image, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(recon.view_depth, recon.canonical_depth, rtol=1e-5, atol=1e-5)


def test_symmetric_object_gives_identical_branches_under_any_view():
    view = torch.tensor([[0.1, 0.4, 0.05], [-0.2, -0.3, 0.0]])
    recon = Unsup3D(TINY, Renderer()).reconstruct(_symmetric_decomposition(view=view))
    original, mirrored = Reconstruction.split(recon.image)
    torch.testing.assert_close(original, mirrored, rtol=1e-4, atol=1e-4)
    assert 0.5 < recon.mask.mean() < 1.0  # rotated: some pixels leave the mask
    assert ((recon.image[:2] == 0.5) | recon.mask.bool()).all()  # outside the mask: mid-grey


def test_asymmetric_object_gives_different_branches_and_ablations_switch_them():
    decomp = _symmetric_decomposition()
    decomp = Decomposition(**{**decomp.__dict__, "albedo": torch.rand(2, 3, 64, 64)})
    recon = Unsup3D(TINY, Renderer()).reconstruct(decomp)
    assert not torch.allclose(*Reconstruction.split(recon.image))
    no_albedo_flip = Unsup3D(ModelConfig(**{**TINY.__dict__, "flip_albedo": False}), Renderer())
    recon = no_albedo_flip.reconstruct(decomp)
    torch.testing.assert_close(*Reconstruction.split(recon.image))


def test_reconstruct_without_mirror_is_the_first_half_with_its_own_mask():
    torch.manual_seed(0)
    decomp = _symmetric_decomposition(view=torch.tensor([[0.1, 0.5, 0.05], [-0.2, -0.3, 0.0]]))
    x = torch.linspace(-1, 1, 64)
    lopsided = fill_border(decomp.depth_unbordered + 0.04 * torch.relu(x), 1.04)  # (2, 1, H, W)
    decomp = Decomposition(**{**decomp.__dict__, "albedo": torch.rand(2, 3, 64, 64),
                              "depth": lopsided})  # fmt: skip
    model = Unsup3D(TINY, Renderer())
    both, single = model.reconstruct(decomp), model.reconstruct(decomp, mirror=False)
    for name in ("canonical_depth", "canonical_albedo", "canonical_normal", "shading",
                 "canonical_image", "view_depth", "view_mask", "grid"):  # fmt: skip
        torch.testing.assert_close(getattr(single, name), getattr(both, name)[:2], msg=name)
    torch.testing.assert_close(single.mask, both.view_mask[:2])
    assert (single.mask >= both.mask).all() and (single.mask > both.mask).any()
    joint = both.mask.bool().expand(-1, 3, -1, -1)
    torch.testing.assert_close(single.image[joint], both.image[:2][joint])
    outside = ~single.mask.bool().expand(-1, 3, -1, -1)
    assert (single.image[outside] == 0.5).all()


def test_without_light_the_canonical_image_is_the_albedo():
    model = Unsup3D(ModelConfig(**{**TINY.__dict__, "use_light": False}), Renderer())
    assert model.light_net is None
    image = torch.rand(2, 3, 64, 64)
    decomp = model(image)
    recon = model.reconstruct(decomp)
    torch.testing.assert_close(recon.canonical_image[:2], decomp.albedo)


def test_light_mix_blends_the_shading_from_none_to_the_predicted_light():
    torch.manual_seed(0)
    model = Unsup3D(TINY, Renderer())
    image = torch.rand(2, 3, 64, 64)
    lit = model(image)
    model.light_mix = 0.0  # unshaded: the canonical image is the albedo
    off = model(image)
    torch.testing.assert_close(off.ambient, torch.ones(2))
    torch.testing.assert_close(off.diffuse, torch.zeros(2))
    torch.testing.assert_close(model.reconstruct(off).canonical_image[:2], off.albedo)
    model.light_mix = 0.25  # shading 1 − m + m·(ka + kd·max(0, n·l)): linear in m
    part = model(image)
    torch.testing.assert_close(part.ambient, 0.75 + 0.25 * lit.ambient)
    torch.testing.assert_close(part.diffuse, 0.25 * lit.diffuse)
    torch.testing.assert_close(part.light_direction, lit.light_direction)
    shading = [model.reconstruct(d).canonical_image[:2] / d.albedo for d in (off, part, lit)]
    torch.testing.assert_close(shading[1], 0.75 * shading[0] + 0.25 * shading[2])


def test_light_direction_mix_fades_the_direction_from_frontal():
    torch.manual_seed(0)
    model = Unsup3D(TINY, Renderer())
    image = torch.rand(2, 3, 64, 64)
    lit = model(image)
    model.light_direction_mix = 0.0  # from the camera's side, intensities as predicted
    frontal = model(image)
    torch.testing.assert_close(frontal.light_direction, torch.tensor([[0.0, 0, 1]] * 2))
    torch.testing.assert_close((frontal.ambient, frontal.diffuse), (lit.ambient, lit.diffuse))
    model.light_direction_mix = 0.5  # the normalised midpoint of (0, 0, 1) and d
    half = model(image).light_direction
    expected = lit.light_direction + torch.tensor([0.0, 0, 1])
    torch.testing.assert_close(half, expected / expected.norm(dim=1, keepdim=True))


def test_view_frame_light_is_turned_into_the_canonical_frame_with_the_view():
    torch.manual_seed(0)
    canonical = Unsup3D(TINY, Renderer())
    view = Unsup3D(ModelConfig(**{**TINY.__dict__, "light_frame": "view"}), Renderer())
    view.load_state_dict(canonical.state_dict())  # the same networks, the light read differently
    image = torch.rand(3, 3, 64, 64)
    lit, turned = canonical(image), view(image)
    rotation = euler_to_rotation(turned.view_angles)
    assert rotation.sub(torch.eye(3)).abs().amax() > 1e-3  # a real turn
    # d_view is what the light network says; the canonical direction is Rᵀ·d_view
    torch.testing.assert_close(
        rotation @ turned.light_direction[:, :, None], lit.light_direction[:, :, None]
    )
    torch.testing.assert_close(turned.light_direction.norm(dim=1), torch.ones(3))
    # shading a canonical normal n with d equals shading its view normal R·n with d_view
    normal = torch.nn.functional.normalize(torch.randn(3, 3), dim=1)
    torch.testing.assert_close(
        (normal * turned.light_direction).sum(1),
        ((rotation @ normal[:, :, None])[:, :, 0] * lit.light_direction).sum(1),
    )
    # the shading's gradient reaches the view network only through a view-frame light
    turned.light_direction[:, 0].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in view.view_net.parameters())
    lit.light_direction[:, 0].sum().backward()
    assert all(p.grad is None for p in canonical.view_net.parameters())
    with pytest.raises(ValueError, match="light_frame"):
        ModelConfig(light_frame="world")


def test_gradients_reach_every_network():
    model = Unsup3D(TINY, Renderer())
    image = torch.rand(2, 3, 64, 64)
    decomp = model(image)
    recon = model.reconstruct(decomp)
    loss = (recon.image - image.repeat(2, 1, 1, 1)).abs().mean()
    loss = loss + decomp.confidence.mean() + decomp.perceptual_confidence.mean()
    loss.backward()
    for name in ("depth_net", "albedo_net", "light_net", "view_net", "confidence_net"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name


def test_decomposition_detach_and_to():
    decomp = Unsup3D(TINY, Renderer())(torch.rand(1, 3, 64, 64))
    detached = decomp.detach()
    assert decomp.depth.requires_grad and not detached.depth.requires_grad
    assert detached.to(torch.float64).albedo.dtype == torch.float64


def test_dome_template_is_a_symmetric_half_ellipsoid():
    dome = dome_template(64)
    assert dome.shape == (1, 1, 64, 64)
    torch.testing.assert_close(dome, dome.flip(-1))  # bilaterally symmetric
    torch.testing.assert_close(dome, dome.flip(-2))
    assert dome[0, 0, 31, 31] > 0.99 and dome[0, 0, 0, 0] == 0 and dome[0, 0, 31, 0] == 0
    # the ellipse x²/a² + y²/b² = 1 in units of the side: a = 0.35 → |x| ≤ 22.4 px at the centre row
    row = dome[0, 0, 31] > 0
    assert row.sum() == 44  # columns 10..53, |c − 31.5| ≤ 22.4
    x = (torch.tensor(40.0) - 31.5) / 64
    y = (torch.tensor(20.0) - 31.5) / 64
    expected = torch.sqrt(1 - (x / 0.35) ** 2 - (y / 0.45) ** 2)
    torch.testing.assert_close(dome[0, 0, 20, 40], expected)


@pytest.mark.parametrize("centring", ["mean", "none"])
def test_dome_depth_init_starts_convex_and_its_template_learns(centring):
    torch.manual_seed(0)
    extra = {"flat_depth_init": True, "dome_depth_init": 0.07, "depth_centring": centring}
    model = Unsup3D(ModelConfig(**{**TINY.__dict__, **extra}), Renderer())
    image = torch.rand(2, 3, 64, 64)
    depth = model(image).depth_unbordered  # (2, 1, 64, 64)
    torch.testing.assert_close(depth[0], depth[1])  # the same dome for every image
    relief = depth[0, 0, 0, 0] - depth[0, 0, 31, 31]  # corner (background) minus centre
    if centring == "none":  # exact: the background stays at (min + max) / 2, the pivot
        torch.testing.assert_close(depth[0, 0, 0, 0], torch.tensor(1.0))
        torch.testing.assert_close(relief, torch.tensor(0.07), atol=2e-4, rtol=0)
    else:  # the mean moves to the middle: the tanh's slope differs on the two sides
        assert 0.07 < relief < 0.1
    depth.sum().backward()
    assert model.depth_template.grad.abs().sum() > 0
    assert "depth_template" in model.state_dict()
    assert "depth_template" not in Unsup3D(TINY, Renderer()).state_dict()
    with pytest.raises(ValueError, match="dome_depth_init"):
        Unsup3D(ModelConfig(**{**TINY.__dict__, "dome_depth_init": 0.2}), Renderer())


def test_depth_rest_moves_where_a_raw_zero_lands_and_keeps_the_tanh():
    low, high, rest = 0.9, 1.02, 1.0
    zeros = torch.zeros(1, 1, 2, 2)
    torch.testing.assert_close(
        decode_depth(zeros, low, high, "none", rest), torch.full_like(zeros, rest)
    )
    raw = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    depth = decode_depth(raw, low, high, "none", rest)
    # naive: the sigmoid form of the squash, with its offset found by bisection on raw 0 → rest
    lo_b, hi_b = -10.0, 10.0
    for _ in range(100):
        mid = (lo_b + hi_b) / 2
        if low + (high - low) * torch.sigmoid(torch.tensor(2 * mid)).item() < rest:
            lo_b = mid
        else:
            hi_b = mid
    expected = low + (high - low) * torch.sigmoid(2 * (raw + lo_b))
    torch.testing.assert_close(depth, expected)
    (grad,) = torch.autograd.grad(depth.sum(), raw)
    squashed = torch.tanh(raw + depth_to_raw(rest, low, high))
    torch.testing.assert_close(grad, (high - low) / 2 * (1 - squashed.square()))
    far = torch.tensor([[[[-50.0, 50.0]]]])
    torch.testing.assert_close(
        decode_depth(far, low, high, "none", rest), torch.tensor([[[[low, high]]]])
    )
    # None is the paper's middle of the range; "mean" centring puts the mean raw at the rest
    torch.testing.assert_close(
        decode_depth(raw, low, high, "none", 0.96), decode_depth(raw, low, high, "none")
    )
    centred = decode_depth(raw.detach() + 3.0, low, high, "mean", rest)
    torch.testing.assert_close(
        centred,
        decode_depth(
            raw.detach() - raw.detach().mean((2, 3), keepdim=True), low, high, "none", rest
        ),
    )
    with pytest.raises(ValueError, match="not inside"):
        decode_depth(raw, low, high, "none", 1.02)
    with pytest.raises(ValueError, match="model.depth_rest"):
        Unsup3D(ModelConfig(**{**TINY.__dict__, "depth_rest": 1.2}), Renderer())


def test_dome_depth_init_with_a_rest_keeps_the_rim_at_the_rest():
    torch.manual_seed(0)
    extra = {"flat_depth_init": True, "dome_depth_init": 0.07, "depth_centring": "none",
             "min_depth": 0.9, "max_depth": 1.02, "depth_rest": 1.0}  # fmt: skip
    model = Unsup3D(ModelConfig(**{**TINY.__dict__, **extra}), Renderer())
    depth = model(torch.rand(2, 3, 64, 64)).depth_unbordered  # (2, 1, 64, 64)
    torch.testing.assert_close(depth[:, 0, 0, 0], torch.ones(2))  # the rim: the rest
    template = dome_template(64)  # its top (1 at the centre, between the four middle pixels)
    peak = float(template.max())  # decodes to rest − dome: here 0.9997 of the way up
    raw_top = depth_to_raw(0.93, 0.9, 1.02)
    rest_raw = depth_to_raw(1.0, 0.9, 1.02)
    expected = 0.96 + 0.06 * math.tanh(rest_raw + peak * (raw_top - rest_raw))
    torch.testing.assert_close(depth[0, 0].min(), torch.tensor(expected, dtype=torch.float32))
    assert abs(expected - 0.93) < 1e-4
    assert model.rest_depth == 1.0 and Unsup3D(TINY, Renderer()).rest_depth == pytest.approx(1.0)
    with pytest.raises(ValueError, match="in front of"):  # more than the room in front of rest
        Unsup3D(ModelConfig(**{**TINY.__dict__, **extra, "dome_depth_init": 0.1}), Renderer())


def test_view_depth_range_defaults_to_the_originals_and_a_wider_one_keeps_a_far_head():
    assert Unsup3D(TINY, Renderer()).view_depth_range == pytest.approx((0.8, 1.2))
    decomp = _symmetric_decomposition()  # depth 0.95-1.05, borders at 1.04
    pushed = Decomposition(**{**decomp.__dict__, "view_translation": torch.tensor(
        [[0.0, 0.0, 0.1], [0.0, 0.0, 0.3]])})  # fmt: skip
    recon = Unsup3D(TINY, Renderer()).reconstruct(pushed, mirror=False)
    assert recon.view_mask[0].mean() > 0.7  # 1.05-1.15: valid (the frame's edge is uncovered)
    assert not recon.view_mask[1].any()  # 1.25-1.35: past 1.2, all invalid
    wide = Unsup3D(ModelConfig(**{**TINY.__dict__, "view_depth_range": (0.6, 1.5)}), Renderer())
    assert wide.view_depth_range == (0.6, 1.5)
    recon = wide.reconstruct(pushed, mirror=False)
    assert recon.view_mask[1].mean() > 0.5 and recon.view_mask[1, 0, 32, 32]
    centre = float(decomp.depth[0, 0, 31:33, 31:33].mean())  # the tip, on the view axis
    seen = float(recon.view_depth[1, 0, 31:33, 31:33].mean())
    assert seen == pytest.approx(centre + 0.3, abs=1e-3)


def test_bad_view_depth_range_is_a_value_error():
    with pytest.raises(ValueError, match="view_depth_range"):
        ModelConfig(view_depth_range=(1.2, 0.8))


def test_albedo_width_widens_the_albedo_network_alone():
    narrow = Unsup3D(TINY, Renderer())
    wide = Unsup3D(ModelConfig(**{**TINY.__dict__, "albedo_width": 2 * TINY.width}), Renderer())
    assert _count(wide.albedo_net) == _count(EncoderDecoder(3, 2 * TINY.width, TINY.depth_zdim))
    assert _count(wide.albedo_net) > _count(narrow.albedo_net)
    for name in ("depth_net", "view_net", "light_net", "confidence_net"):
        assert _count(getattr(wide, name)) == _count(getattr(narrow, name)), name
    decomp = wide(torch.rand(2, 3, 64, 64))
    assert decomp.albedo.shape == (2, 3, 64, 64)
    wide.reconstruct(decomp).image.mean().backward()
    assert all(p.grad is not None for p in wide.albedo_net.parameters())
    same = ModelConfig(**{**TINY.__dict__, "albedo_width": TINY.width})
    assert _count(Unsup3D(same, Renderer())) == _count(narrow)
    with pytest.raises(ValueError, match="albedo_width"):
        ModelConfig(albedo_width=6)


def test_scale_range_predicts_a_bounded_size_that_resizes_the_view():
    model = Unsup3D(ModelConfig(**{**TINY.__dict__, "scale_range": 0.3}), Renderer())
    assert model.view_net.layers[-2].out_channels == 7
    image = torch.rand(2, 3, 64, 64)
    decomp = model(image)
    assert decomp.view_scale.shape == (2,)
    assert ((decomp.view_scale >= 1 / 1.3) & (decomp.view_scale <= 1.3)).all()
    recon = model.reconstruct(decomp)
    recon.image.mean().backward()
    assert model.view_net.layers[-2].weight.grad[6].abs().sum() > 0  # the scale output learns
    with torch.no_grad():  # predict_view_depth applies the same scale
        depth, mask, _ = model.predict_view_depth(image)
        alone = model.reconstruct(model(image), mirror=False)
    torch.testing.assert_close(depth, alone.view_depth)
    torch.testing.assert_close(mask, alone.view_mask)
    # Half the size: the head covers about a quarter of the pixels it covers at size 1.
    plain = _symmetric_decomposition()
    halved = Decomposition(**{**plain.__dict__, "view_scale": torch.tensor([1.0, 0.5])})
    covered = model.reconstruct(halved, mirror=False).view_mask.flatten(1).mean(1).tolist()
    assert covered[0] > 0.8 and covered[1] == pytest.approx(covered[0] / 4, rel=0.15)
    with pytest.raises(ValueError, match="scale_range"):
        ModelConfig(scale_range=1.0)


def test_render_views_is_the_reconstruction_at_those_views_filled_from_the_canonical_image():
    model = Unsup3D(TINY, Renderer())
    decomp = _symmetric_decomposition()  # its own view: the identity
    view = torch.tensor([[0.0, 0.5, 0.0], [0.1, -0.4, 0.05]])
    shift = torch.tensor([[0.01, 0.0, 0.0], [0.0, -0.01, 0.0]])
    rendered = model.render_views(decomp, view, shift)
    turned = _symmetric_decomposition(view=view)
    turned = Decomposition(**{**turned.__dict__, "view_translation": shift})
    recon = model.reconstruct(turned, mirror=False)
    covered = recon.mask.bool().expand_as(rendered)
    assert 0 < covered.float().mean() < 1  # a turn of 0.5 rad uncovers a border
    torch.testing.assert_close(rendered[covered], recon.image[covered])
    torch.testing.assert_close(rendered[~covered], recon.canonical_image[~covered])
    # at the identity view it is the canonical image
    same = model.render_views(decomp, torch.zeros(2, 3), torch.zeros(2, 3))
    torch.testing.assert_close(same, recon.canonical_image.clamp(0, 1), rtol=1e-4, atol=1e-4)


def test_predict_view_is_the_forward_passes_view():
    torch.manual_seed(0)
    model = Unsup3D(TINY, Renderer()).eval()
    image = torch.rand(2, 3, 64, 64)
    decomp = model(image)
    angles, translation = model.predict_view(image)
    torch.testing.assert_close(angles, decomp.view_angles)
    torch.testing.assert_close(translation, decomp.view_translation)
