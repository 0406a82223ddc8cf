"""Which texels of a photo's unwrap are skin: what the texture keeps from the photo (texture.py step 4).

Two kinds of evidence, both in the face tile's UV space (texels as in texture.py, row 0 at v = 1):
1. Where, from the model alone (`TileRegions`, once per size): the eye openings and the inside of the lips (the
   UV polygons of the ibug-68 eye and inner-lip landmarks, widened by EYE_MARGIN and LIP_MARGIN) are never skin:
   the 3D eyes, teeth and mouth have their own materials, and a fit a little off puts the photo's eyes and teeth
   there. The reliable skin (cheeks under the eyes, the nose: RELIABLE polygons) is where the photo's own skin
   colour is read; on the brows (BROWS) dark hair is allowed.
2. What the photo says (`skin_weight`): a texel is skin when its de-lit colour is near what the albedo model,
   fitted to the reliable skin alone, expects there (so lips may be red and brows dark). The difference is taken in
   log RGB as lightness and two chroma differences, centred on the reliable texels' median (a colour cast is not
   an occluder). Lightness may stray LIGHTNESS darker or lighter (the de-lighting leaves shading behind; on the brows
   BROW_DARKNESS darker); chroma CHROMA_SIGMAS of the reliable texels' robust spread (1.4826 MAD), at least
   CHROMA_FLOOR; a grey-scale or toned photo (MONOCHROME) is judged by lightness alone. The combined multiple of the
   tolerances maps to skin 1 below SKIN_DISTANCE[0] and 0 above SKIN_DISTANCE[1]. A texel where much is rejected
   within EDGE (PATCH) is rejected too (an occluder's soft rim; stray texels stay). Hair, glasses frames, beards,
   clothes and background fall outside; a skin-coloured hand does not: it is filled like skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..model.albedo_model import AlbedoModel

EYES = (tuple(range(36, 42)), tuple(range(42, 48)))  # ibug-68 landmarks round each eye opening
MOUTH_INSIDE = (tuple(range(60, 68)),)  # the inner lip line: inside it the tile holds the lips' inner faces
BROWS = (tuple(range(17, 22)), tuple(range(22, 27)))  # the eyebrows' lines: hair, but the face's own
RELIABLE = ((36, 41, 40, 39, 31, 3, 2, 1), (45, 46, 47, 42, 35, 13, 14, 15),  # under the eyes, the cheeks
            (27, 31, 32, 33, 34, 35))  # the nose
EYE_MARGIN = 0.02  # of the tile's side (about 5 mm) round the eye openings: the lids' rims and lashes
LIP_MARGIN = 0.005  # round the inner lip line: the lips' wet inner rim
BROW_WIDTH = 0.025  # of the tile's side, each way from the brow line
RELIABLE_SHRINK = 0.01  # of the tile's side: the reliable polygons kept off the eyes, nostrils and mouth
EDGE = 0.01  # of the tile's side: the neighbourhood whose rejected share (below) rejects a texel too
PATCH = (0.25, 0.6)  # rejected share of the neighbourhood: the texel kept below the first, rejected above the second
LIGHTNESS = (0.8, 0.5)  # log units: how much darker, lighter than the reliable skin's median a texel may be
BROW_DARKNESS = 1.6  # log units: how much darker a texel on the brows may be
CHROMA_SIGMAS, CHROMA_FLOOR = 3.0, 0.08  # chroma: how many robust sigmas it may stray, at least the floor (log)
MONOCHROME = 0.01  # log units: reliable skin whose chroma spreads less is from a grey-scale or toned photo
SKIN_DISTANCE = (1.0, 1.4)  # the tolerances' combined multiple: skin below the first, not skin above the second
MIN_RELIABLE = 0.002  # share of the tile's texels: fewer reliable ones seen and the colour test is not made
EXPECTED_COMPONENTS = 60  # of the albedo model, fitted to the reliable skin: the colours expected elsewhere
LOG_OFFSET = 0.02  # linear RGB added before the log (dark texels do not blow up)


def _polygons(landmark_uv: np.ndarray, polygons, size: int) -> np.ndarray:
    """[size, size] bool: inside any of the polygons (tuples of landmark ids) drawn at the landmarks' UVs."""
    im = Image.new("L", (size, size))
    draw = ImageDraw.Draw(im)
    for poly in polygons:
        draw.polygon([(float(u * size), float((1 - v) * size)) for u, v in landmark_uv[list(poly)]], fill=1)
    return np.asarray(im, bool)


def _lines(landmark_uv: np.ndarray, lines, size: int, width: int) -> np.ndarray:
    """[size, size] bool: within `width` texels of the polylines (tuples of landmark ids) at the landmarks' UVs."""
    im = Image.new("L", (size, size))
    draw = ImageDraw.Draw(im)
    for line in lines:
        points = [(float(u * size), float((1 - v) * size)) for u, v in landmark_uv[list(line)]]
        draw.line(points, fill=1, width=2 * width + 1, joint="curve")
        for x, y in points[:: len(points) - 1]:  # round ends
            draw.ellipse([x - width, y - width, x + width, y + width], fill=1)
    return np.asarray(im, bool)


def _grow(mask: torch.Tensor, texels: int) -> torch.Tensor:
    """[H, W] bool widened by `texels` in every direction."""
    if texels < 1:
        return mask
    return F.max_pool2d(mask[None, None].float(), 2 * texels + 1, 1, texels)[0, 0] > 0.5


@dataclass(frozen=True)
class TileRegions:
    """Masks of the face tile at one size, [size, size] bool: `openings` (eyes, inside of the lips: never skin),
    `reliable` (cheeks and nose: where the photo's skin colour is read), `brows` (where dark hair is kept)."""

    openings: torch.Tensor
    reliable: torch.Tensor
    brows: torch.Tensor

    @classmethod
    def build(cls, landmark_uv: np.ndarray, size: int, device: torch.device | str = "cpu") -> TileRegions:
        """landmark_uv: [68, 2] face-tile UVs (tile 0..1) of the iBUG-68 vertices on the mesh's features (the
        model's detector68 set: where its brows, eyes and mouth are drawn)."""
        eyes = _grow(torch.from_numpy(_polygons(landmark_uv, EYES, size)).to(device), round(EYE_MARGIN * size))
        mouth = _grow(torch.from_numpy(_polygons(landmark_uv, MOUTH_INSIDE, size)).to(device),
                      round(LIP_MARGIN * size))
        openings = eyes | mouth
        reliable = torch.from_numpy(_polygons(landmark_uv, RELIABLE, size)).to(device)
        reliable = reliable & ~_grow(~reliable, round(RELIABLE_SHRINK * size)) & ~_grow(openings, round(
            RELIABLE_SHRINK * size))
        brows = torch.from_numpy(_lines(landmark_uv, BROWS, size, round(BROW_WIDTH * size))).to(device)
        return cls(openings, reliable, brows & ~openings)


def _log_colour(albedo: torch.Tensor) -> torch.Tensor:
    """[..., 3] linear RGB -> [..., 3] (lightness, red - green, blue - green) in log units."""
    x = torch.log(albedo + LOG_OFFSET)
    return torch.stack([x.mean(-1), x[..., 0] - x[..., 1], x[..., 2] - x[..., 1]], -1)


def skin_weight(albedo: torch.Tensor, seen: torch.Tensor, regions: TileRegions,
                albedo_model: AlbedoModel | None) -> torch.Tensor:
    """How much each texel is skin, [size, size] in [0, 1] (0 in the openings and wherever the colour test fails).

    albedo: [size, size, 3] linear RGB, the photo's de-lit unwrap; seen: [size, size] in [0, 1] its visibility
    weight (texture.unwrap); albedo_model: predicts the colour expected at each texel (None: the reliable texels'
    median colour everywhere)."""
    size = albedo.shape[0]
    reliable = regions.reliable & (seen > 0.5)
    skin = (~regions.openings).float()
    if int(reliable.sum()) < MIN_RELIABLE * size * size:
        return skin
    residual = _log_colour(albedo)
    raw_chroma = residual[reliable][:, 1:]
    monochrome = bool((1.4826 * (raw_chroma - raw_chroma.median(0).values).abs().median(0).values < MONOCHROME).all())
    if albedo_model is not None:
        coeffs = albedo_model.fit(albedo.permute(2, 0, 1), reliable.float(), EXPECTED_COMPONENTS)
        expected = F.interpolate(albedo_model(coeffs[None]), size=(size, size), mode="bilinear",
                                 align_corners=False)[0].permute(1, 2, 0).clamp(0, 1)
        residual = residual - _log_colour(expected)
    at_reliable = residual[reliable]
    centre = at_reliable.median(0).values
    spread = 1.4826 * (at_reliable[:, 1:] - centre[1:]).abs().median(0).values
    lightness = residual[..., 0] - centre[0]
    darker = torch.where(regions.brows, BROW_DARKNESS, LIGHTNESS[0])
    tolerance = torch.where(lightness < 0, darker, torch.full_like(darker, LIGHTNESS[1]))
    chroma = (residual[..., 1:] - centre[1:]) / (CHROMA_SIGMAS * spread).clamp(min=CHROMA_FLOOR)
    if monochrome:  # a grey-scale or toned photo: its chroma says nothing, the model's would mislead
        chroma = torch.zeros_like(chroma)
    distance = torch.cat([(lightness / tolerance)[..., None], chroma], -1).norm(dim=-1)
    colour_ok = ((SKIN_DISTANCE[1] - distance) / (SKIN_DISTANCE[1] - SKIN_DISTANCE[0])).clamp(0, 1)
    k = 2 * round(EDGE * size) + 1  # near a rejected patch (not a stray texel) also rejected: its blurred rim
    patch = (1 - colour_ok)[None, None]
    for kernel in ((k, 1), (1, k)):  # a k x k mean, as two 1-D means
        patch = F.avg_pool2d(patch, kernel, 1, (kernel[0] // 2, kernel[1] // 2), count_include_pad=False)
    in_patch = ((PATCH[1] - patch[0, 0]) / (PATCH[1] - PATCH[0])).clamp(0, 1)
    return skin * colour_ok * in_patch
