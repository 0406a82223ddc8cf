"""The face texture: hole filling and band-wise blending (reconstruct/fill.py), what counts as skin
(reconstruct/skin.py) and the synthetic occluder benchmark in smoke size (training/texture_eval.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.reconstruct.fill import multiband_blend, push_pull


def test_push_pull_keeps_what_is_seen_and_continues_it_smoothly():
    H, W = 67, 90  # odd sides on purpose
    x = torch.linspace(0, 1, W).expand(H, W)
    image = torch.stack([x, 1 - x, torch.full_like(x, 0.3)])
    weight = torch.ones(H, W)
    weight[20:45, 30:60] = 0  # a hole in the middle of a ramp
    out = push_pull(image, weight)
    torch.testing.assert_close(out[:, weight > 0], image[:, weight > 0])
    hole = out[:, 20:45, 30:60]
    assert hole[2].sub(0.3).abs().max() < 1e-5  # a constant stays constant
    assert hole[0].min() > image[0, 0, 28] - 0.02 and hole[0].max() < image[0, 0, 61] + 0.02  # within its rim
    assert hole[0].diff(dim=1).abs().max() < 0.05  # no jumps inside
    assert torch.isfinite(push_pull(image, torch.zeros(H, W))).all()


def test_multiband_blend_switches_detail_sharply_and_colour_smoothly():
    H, W = 64, 128
    stripes = 0.1 * (1 - 2 * ((torch.arange(W) // 2) % 2)).float().expand(H, W)  # ++--: 4-texel stripes
    left, right = (0.3 + stripes)[None], torch.full((1, H, W), 0.7)
    shares = torch.zeros(2, H, W)
    shares[0, :, : W // 2], shares[1, :, W // 2:] = 1, 1
    out = multiband_blend(torch.stack([left, right]), shares, levels=4)[0]
    same = multiband_blend(torch.stack([right, right]), shares, levels=4)
    torch.testing.assert_close(same, right)  # shares summing to 1 rebuild a layer exactly
    row = out[H // 2]
    torch.testing.assert_close(row[:16], left[0, 0, :16], atol=0.02, rtol=0)  # far from the boundary: each layer
    torch.testing.assert_close(row[-16:], right[0, 0, -16:], atol=0.02, rtol=0)
    smooth = torch.nn.functional.avg_pool1d(row[None, None], 4, 1)[0, 0]  # the colour, stripes averaged out
    detail = row[2:-1] - smooth  # the stripes (centred 4-texel means)
    assert detail[W // 2 + 2: W // 2 + 14].abs().max() < 0.02  # do not cross into the plain layer
    assert detail[W // 2 - 20: W // 2 - 6].abs().min() > 0.07  # and keep their strength up to near the boundary
    assert smooth.diff().abs().max() < 0.1  # no step: the 0.4 change is spread over the coarse bands


@pytest.fixture(scope="module")
def tile_mesh(real_model_data):
    from backend.reconstruct.texture import TileMesh

    return TileMesh.from_data(real_model_data)


def test_regions_lie_where_the_face_is(tile_mesh):
    size = 256
    r = tile_mesh.regions(size)
    uv = tile_mesh.landmark_uv
    px = np.clip(np.round(np.c_[uv[:, 0] * size, (1 - uv[:, 1]) * size]).astype(int), 0, size - 1)
    at = lambda mask, i: bool(mask[px[i, 1], px[i, 0]])  # noqa: E731
    assert all(at(r.openings, i) for i in (37, 44, 62, 66))  # eyelids' middles, inner lips
    assert not any(at(r.openings, i) for i in (30, 8, 19))  # nose tip, chin, a brow
    assert at(r.brows, 19) and at(r.brows, 24) and not at(r.brows, 30)
    assert not (r.reliable & r.openings).any() and 0.02 < r.reliable.float().mean() < 0.2
    left, right = r.reliable[:, : size // 2].sum(), r.reliable[:, size // 2:].sum()  # the tile is symmetric
    assert abs(int(left) - int(right)) < 0.1 * int(left)


@pytest.mark.parametrize("with_model", [False, True])
def test_skin_weight_rejects_hair_clothes_and_openings_not_a_colour_cast(tile_mesh, with_model):
    from backend.model.albedo_model import AlbedoModel
    from backend.reconstruct.skin import skin_weight

    size = 256
    albedo_model = AlbedoModel.load() if with_model else None
    regions = tile_mesh.regions(size)
    g = torch.Generator().manual_seed(0)
    if albedo_model is not None:  # a face the model knows, with texel noise
        base = albedo_model(0.5 * torch.randn(1, albedo_model.n_components, generator=g))
        base = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear")[0].permute(1, 2, 0)
    else:
        base = torch.tensor([0.55, 0.38, 0.3]).expand(size, size, 3)
    albedo = (base * torch.exp(0.05 * torch.randn(size, size, 3, generator=g))).clamp(0, 1)
    hair, shirt = (slice(14, 38), slice(90, 170)), (slice(215, 245), slice(60, 200))  # forehead, neck
    albedo[hair] = torch.tensor([0.05, 0.035, 0.03])  # dark hair over the forehead
    albedo[shirt] = torch.tensor([0.1, 0.2, 0.5])  # a blue collar over the neck
    seen = torch.ones(size, size)
    skin = skin_weight(albedo, seen, regions, albedo_model)
    assert skin[hair].mean() < 0.05 and skin[shirt].mean() < 0.05
    assert not skin[regions.openings].any()
    clear = ~regions.openings
    clear[9:43, 85:175] = clear[210:250, 55:205] = False
    assert skin[clear].mean() > 0.9
    grey = albedo.mean(-1, keepdim=True).expand(size, size, 3)  # a grey-scale photo: skin by lightness alone
    assert skin_weight(grey, seen, regions, albedo_model)[clear].mean() > 0.9
    nothing = skin_weight(albedo, torch.zeros(size, size), regions, albedo_model)  # no reliable skin in view
    assert nothing[clear].min() == 1  # then only the openings are refused


def test_synthetic_occluders_smoke(real_model_path):
    """Three synthetic faces (frontal with a hand, turned 30 degrees both ways; hair, glasses, collar on each) at
    texture 512: the README's benchmark in smoke size. Measured (sRGB 0-255): with this texture path leak 0.11,
    under occluders 10.7, eyes and inner lips 5.4, seam at the edge of view 6.6, step to the head 0.5, seen skin
    4.9; with the one before it (everything in view baked in, the hidden side mirrored, a flat head) 0.83, 65, 17,
    12.6, 57 and 5.7. Each bound sits between the two, far enough from today's for CPU rounding, near enough to
    fail a regression."""
    from training.texture_eval import evaluate

    m = evaluate(faces=3, size=512, seed=0, model_path=real_model_path, log=lambda _: None)
    assert m["leak"] < 0.4
    assert m["under occluders"] < 30
    assert m["eyes and inner lips"] < 10
    assert m["seam at the edge of view"] < 9.5
    assert m["step to the head"] < 5  # a step of 5 levels in sRGB is about what shows on a smooth surface
    assert m["seen skin"] < 5.2  # what is kept is kept well
