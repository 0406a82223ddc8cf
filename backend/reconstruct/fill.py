"""Filling and blending images with holes, for the face texture (texture.py step 4). Images are [C, H, W] float
tensors, weights and shares [H, W] in [0, 1], any size (odd sides included).

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


def _down(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, ceil(H / 2), ceil(W / 2)], 2 x 2 means (partial at odd edges)."""
    return F.avg_pool2d(x, 2, ceil_mode=True)


def _up(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(shape[-2:]), mode="bilinear", align_corners=False)


def push_pull(image: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """image [C, H, W] kept where weight [H, W] is 1, a smooth continuation of it where weight is 0, a mix between;
    -> [C, H, W]. With no weight anywhere the result is 0."""
    x, w = image[None] * (weight > 0), weight[None, None].to(image)
    pyramid = []
    while max(x.shape[-2:]) > 1:
        pyramid.append((x, w))
        w_down = _down(w)
        x = _down(x * w) / w_down.clamp(min=1e-12)
        w = (4 * w_down).clamp(max=1)  # four half-seen texels make one seen texel a level up
    for fine, w_fine in reversed(pyramid):
        x = w_fine * fine + (1 - w_fine) * _up(x, fine.shape)
    return x[0]


def multiband_blend(layers: torch.Tensor, shares: torch.Tensor, levels: int) -> torch.Tensor:
    """layers: [L, C, H, W], each a whole image (fill its holes first, push_pull); shares: [L, H, W] summing to 1
    (hard 0 / 1 shares give the sharpest detail); levels: bands below the finest (the coarsest blends over about
    2 ** levels texels) -> [C, H, W]."""
    g, s = layers, shares[:, None].to(layers)
    bands = []
    for _ in range(levels):
        g_down, s_down = _down(g), _down(s)
        bands.append((s * (g - _up(g_down, g.shape))).sum(0))
        g, s = g_down, s_down
    out = (s * g).sum(0)
    for band in reversed(bands):
        out = _up(out[None], band.shape)[0] + band
    return out
