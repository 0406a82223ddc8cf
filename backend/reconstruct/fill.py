"""Filling and blending images with holes, for the face texture (texture.py step 4). Images are [C, H, W] float
tensors, weights and shares [H, W] in [0, 1], any size (odd sides included); `down` and `up` resample anything
[..., H, W] by halves and back.

push_pull: the holes of a weighted image filled by a smooth continuation of what surrounds them: weighted averages
    down a pyramid to one pixel, then back up, each level's holes taken from the coarser one (the push-pull fill of
    Gortler et al.'s Lumigraph; close to a membrane, without its iterations).
multiband_blend: layers merged band by band (Burt and Adelson's Laplacian pyramid): fine detail switches from one
    layer to the next at the boundary of their shares, coarse colour blends over a width that doubles with each
    band, so neither a hard seam nor a doubled edge shows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def down(x: torch.Tensor) -> torch.Tensor:
    """[..., H, W] -> [..., ceil(H / 2), ceil(W / 2)], 2 x 2 means (partial at odd edges)."""
    y = F.avg_pool2d(x.reshape(-1, 1, *x.shape[-2:]), 2, ceil_mode=True)
    return y.view(*x.shape[:-2], *y.shape[-2:])


def up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[..., h, w] -> [..., *size], bilinear."""
    y = F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=tuple(size), mode="bilinear", align_corners=False)
    return y.view(*x.shape[:-2], *y.shape[-2:])


def push_pull(image: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """image [C, H, W] kept where weight [H, W] is 1, a smooth continuation of it where weight is 0, a mix between;
    -> [C, H, W]. With no weight anywhere the result is 0."""
    x, w = image * (weight > 0), weight.to(image)
    pyramid = []
    while max(x.shape[-2:]) > 1:
        pyramid.append((x, w))
        w_down = down(w)
        x = down(x * w) / w_down.clamp(min=1e-12)
        w = (4 * w_down).clamp(max=1)  # four half-seen texels make one seen texel a level up
    for fine, w_fine in reversed(pyramid):
        x = w_fine * fine + (1 - w_fine) * up(x, fine.shape[-2:])
    return x


def multiband_blend(layers: torch.Tensor, shares: torch.Tensor, levels: int) -> torch.Tensor:
    """layers: [L, C, H, W], each a whole image (fill its holes first, push_pull); shares: [L, H, W] summing to 1
    (hard 0 / 1 shares give the sharpest detail); levels: bands below the finest (the coarsest blends over about
    2 ** levels texels) -> [C, H, W]."""
    g, s = layers, shares[:, None].to(layers)
    bands = []
    for _ in range(levels):
        g_down, s_down = down(g), down(s)
        bands.append((s * (g - up(g_down, g.shape[-2:]))).sum(0))
        g, s = g_down, s_down
    out = (s * g).sum(0)
    for band in reversed(bands):
        out = up(out, band.shape[-2:]) + band
    return out
