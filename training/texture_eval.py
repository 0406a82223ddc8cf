"""How well the baked face texture keeps skin, and only skin: synthetic heads with a known albedo and occluders
drawn over them.

    python -m training.texture_eval [--faces 12] [--size 1024] [--truth-albedo FILE] [--out runs/texture_eval]

Each face: a random identity, a neutral expression, yaw 0, 30 or 60 degrees (sides alternating) and a little pitch;
SH light (ambient plus a random direction); the albedo model at random coefficients with fine detail multiplied in
(band-passed noise: only the photo can tell it); the whole head rendered by HeadRenderer at PHOTO pixels on a
smooth-noise background. Over it, with their masks: hair strands across the forehead, a glasses frame, a dark
collar over the neck, and on every other face a hand over the jaw on the seen side. The texture is baked from the
true geometry and light (backend.reconstruct.texture.extract_texture), so what is measured is what the texture
keeps and how it fills the rest, not the fit.

Figures, sRGB 0-255 against the true albedo over the face tile's texels:
- mean error by region: seen skin (in view, not under an occluder), under an occluder, the hidden side (out of
  view), eyes and inner lips (skin.TileRegions.openings), the band along the tile's outer border (scalp, ears,
  neck: BORDER of the side);
- leak: the share of texels under an occluder whose baked colour is nearer the photo's pixel there than the truth;
- seams: the colour step across the edge of what the camera saw (the error smoothed over SEAM_SCALE texels, its
  mean |gradient| within 2 texels of that edge, times SEAM_SCALE: 0 where the error does not jump), and from the
  tile's outermost texels to the colour the rest of the head gets (FaceResult.colour of the "head" material,
  io.face_result.skin_tone).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from scipy import ndimage

from backend.detect.align import landmark_box
from backend.io.colour import linear_to_srgb
from backend.io.errors import MlafaceError
from backend.io.face_result import skin_tone
from backend.io.model_file import read_model
from backend.model.albedo_model import AlbedoModel
from backend.model.face_model import FaceModel
from backend.model.pose import euler_to_matrix
from backend.model.store import resolve_model_path
from backend.reconstruct.texture import Texture, TileMesh, extract_texture
from backend.render.camera import project, to_camera, to_landmark_pixels
from backend.render.head import HeadRenderer
from backend.render.shading import ambient_sh

PHOTO = 512
FOCAL = 2.2 * PHOTO  # pixels: the head fills about two thirds of the photo at DISTANCE
DISTANCE = 0.65  # metres
YAWS = (0.0, 30.0, 60.0)  # degrees
TRUTH_SIZE = 1024  # texels of the true albedo map
DETAIL = 0.06  # log units: the fine detail's strength
BORDER = 0.04  # of the tile's side
SEAM_SCALE = 5  # texels: the error is smoothed over this before its step across an edge is taken


def _noise(g: torch.Generator, size: int, cells: int) -> torch.Tensor:
    """[size, size] smooth noise of about `cells` blobs a side, unit variance."""
    n = torch.randn(1, 1, cells, cells, generator=g)
    return F.interpolate(n, size=(size, size), mode="bicubic", align_corners=False)[0, 0]


def true_albedo(albedo: AlbedoModel, g: torch.Generator) -> torch.Tensor:
    """[3, TRUTH_SIZE, TRUTH_SIZE] linear: the model at N(0, 0.5) coefficients, fine detail multiplied in."""
    base = albedo(0.5 * torch.randn(1, albedo.n_components, generator=g))
    base = F.interpolate(base, size=(TRUTH_SIZE,) * 2, mode="bilinear", align_corners=False)[0]
    detail = _noise(g, TRUTH_SIZE, 256) - _noise(g, TRUTH_SIZE, 64)
    return (base * torch.exp(DETAIL * detail)).clamp(0, 1)


def _curve(p0, p1, bend, n=12):
    t = np.linspace(0, 1, n)[:, None]
    mid = (p0 + p1) / 2 + bend
    return [tuple(map(float, q)) for q in (1 - t) ** 2 * p0 + 2 * t * (1 - t) * mid + t ** 2 * p1]


def draw_occluders(photo: np.ndarray, pts: np.ndarray, seen_side: int, hand: bool,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """photo [H, W, 3] uint8, pts [68, 2] its landmarks, seen_side +1 / -1 (the image side of the face the camera
    sees more of) -> (photo with occluders, mask [H, W] bool)."""
    im, mask = Image.fromarray(photo), Image.new("L", photo.shape[1::-1])
    draws = [ImageDraw.Draw(im), ImageDraw.Draw(mask)]
    up = pts[27] - pts[8]  # chin to nose bridge
    side = np.array([up[1], -up[0]]) / np.linalg.norm(up)
    width = np.linalg.norm(pts[16] - pts[0])

    def draw(kind, xy, colour, **kw):
        for d, c in zip(draws, (colour, 255), strict=True):
            getattr(d, kind)(xy, fill=c, **kw)

    hair = [(45, 32, 24), (20, 18, 18), (196, 160, 100)][rng.integers(3)]
    brows = (pts[19] + pts[24]) / 2
    for _ in range(14):  # strands falling from the hairline across the forehead
        off = rng.uniform(-0.45, 0.45) * width
        top = brows + 0.6 * up + side * off
        end = brows + rng.uniform(0.05, 0.3) * up + side * (off + rng.uniform(-0.2, 0.2) * width)
        draw("line", _curve(top, end, side * rng.uniform(-0.1, 0.1) * width), hair, width=int(rng.integers(3, 7)))
    for eye in (pts[36:42], pts[42:48]):  # a glasses frame
        c, r = eye.mean(0), 0.8 * np.linalg.norm(eye[3] - eye[0])
        for d, colour in zip(draws, ((25, 25, 30), 255), strict=True):
            d.ellipse([c[0] - r, c[1] - 0.7 * r, c[0] + r, c[1] + 0.7 * r], outline=colour, width=4)
    draw("line", [tuple(pts[39] + 0.1 * up), tuple(pts[42] + 0.1 * up)], (25, 25, 30), width=4)
    jaw = pts[3:14]
    collar_top = [tuple(q - 0.42 * up) for q in jaw]
    draw("polygon", collar_top + [(photo.shape[1], photo.shape[0]), (0, photo.shape[0])], (40, 40, 52))
    if hand:  # a hand over the jaw on the seen side, the skin's colour in other light
        tone = np.median(photo[int(pts[30][1]) - 5:int(pts[30][1]) + 5, int(pts[30][0]) - 5:int(pts[30][0]) + 5]
                         .reshape(-1, 3), 0)
        colour = tuple(int(c) for c in np.clip(tone * rng.uniform(0.8, 0.95), 0, 255))
        c = (pts[5] if seen_side < 0 else pts[11]) * 0.6 + pts[57] * 0.4
        r = 0.22 * width
        draw("ellipse", [c[0] - r, c[1] - 0.8 * r, c[0] + r, c[1] + 0.8 * r], colour)
        for k in range(4):  # fingers up the cheek
            base = c + side * (k - 1.5) * 0.32 * r
            draw("line", [tuple(base), tuple(base + 1.3 * r * up / np.linalg.norm(up))], colour, width=int(0.28 * r))
    return np.asarray(im), np.asarray(mask) > 0


def synthetic_face(model: FaceModel, renderer: HeadRenderer, albedo: AlbedoModel, i: int, seed: int) -> dict:
    """Face i: photo [PHOTO, PHOTO, 3] uint8 with occluders, occluder mask, cam verts [V, 3], sh [27], true albedo
    [3, TRUTH_SIZE, TRUTH_SIZE] linear, landmarks [68, 2]."""
    g = torch.Generator().manual_seed(seed * 1000 + i)
    rng = np.random.default_rng(seed * 1000 + i)
    sign = 1 if i % 2 else -1
    yaw = math.radians(YAWS[(i // 2) % len(YAWS)]) * sign
    rot = euler_to_matrix(torch.tensor([math.radians(rng.uniform(-8, 8))]), torch.tensor([yaw]), torch.zeros(1))
    verts = model.vertices(0.7 * torch.randn(1, model.n_identity, generator=g), torch.zeros(1, model.n_expression))
    cam = to_camera(verts, rot, torch.tensor([[0.0, 0.03, -DISTANCE]]))
    sh = ambient_sh(0.85, 1).view(1, 3, 9)
    direction = rng.uniform(-0.35, 0.35, 2)
    sh[:, :, 1], sh[:, :, 3], sh[:, :, 2] = direction[0], direction[1], 0.2
    truth = true_albedo(albedo, g)
    image, mask = renderer.render(cam, torch.tensor([FOCAL]), truth[None], sh.view(1, 27), PHOTO)
    background = torch.stack([0.2 + 0.15 * _noise(g, PHOTO, 4) for _ in range(3)]).clamp(0, 1)
    photo = torch.where(mask[:, None], linear_to_srgb(image), background)[0].permute(1, 2, 0)
    photo = (photo.numpy() * 255).round().astype(np.uint8)
    pts = to_landmark_pixels(model.landmarks(cam), FOCAL, (PHOTO, PHOTO))[0].numpy()
    photo, occluded = draw_occluders(photo, pts, -sign, i % 2 == 0, rng)
    return {"photo": photo, "occluders": occluded, "cam": cam[0], "sh": sh.view(27), "truth": truth,
            "landmarks": pts}


def _srgb255(linear: torch.Tensor) -> np.ndarray:
    return linear_to_srgb(linear.clamp(0, 1)).numpy() * 255


def measure(face: dict, texture: Texture, mesh: TileMesh, size: int) -> dict:
    """The figures of one face (module docstring); texture: its bake at size x size."""
    photo, cam = face["photo"], face["cam"]
    seen, covered = texture.seen, mesh.covered(size).numpy()
    truth = F.interpolate(face["truth"][None], size=(size, size), mode="area")[0].permute(1, 2, 0)
    truth = _srgb255(truth)
    baked = texture.image.astype(np.float32)
    texels = mesh.texels(size)
    where = texels.gather(project(cam[None], FOCAL, (PHOTO, PHOTO))[0, :, :2]).numpy()
    px = np.clip(np.floor(where).astype(int), 0, PHOTO - 1)
    under = np.zeros(size * size, bool)
    under[texels.index.numpy()] = face["occluders"][px[:, 1], px[:, 0]]
    photo_colour = np.zeros((size * size, 3), np.float32)
    photo_colour[texels.index.numpy()] = photo[px[:, 1], px[:, 0]]
    under, photo_colour = under.reshape(size, size), photo_colour.reshape(size, size, 3)

    openings = mesh.regions(size).openings.numpy()
    outer = ndimage.binary_fill_holes(covered)
    inside = ndimage.distance_transform_edt(outer)
    band = covered & (inside <= BORDER * size)
    in_view = covered & (seen > 0.5) & ~openings & ~band
    masks = {"seen skin": in_view & ~under, "under occluders": in_view & under,
             "hidden side": covered & (seen == 0) & ~openings & ~band, "eyes and inner lips": covered & openings,
             "tile border band": band}
    error = np.abs(baked - truth).mean(-1)
    out = {name: float(error[m].mean()) if m.any() else float("nan") for name, m in masks.items()}
    m = masks["under occluders"]
    nearer_photo = np.abs(baked - photo_colour).mean(-1) < np.abs(baked - truth).mean(-1)
    out["leak"] = float(nearer_photo[m].mean()) if m.any() else float("nan")

    smooth_error = ndimage.uniform_filter(baked - truth, size=(SEAM_SCALE, SEAM_SCALE, 1))
    step = np.hypot(np.diff(smooth_error, axis=0)[:, :-1], np.diff(smooth_error, axis=1)[:-1]).mean(-1)
    edge = ndimage.binary_dilation(seen > 0.5, iterations=2) & ndimage.binary_dilation(seen <= 0.5, iterations=2)
    edge = (edge & covered & ~openings & ~band)[:-1, :-1]
    out["seam at the edge of view"] = float(SEAM_SCALE * step[edge].mean()) if edge.any() else float("nan")
    ring = covered & (inside <= 1.5)
    head = np.asarray(linear_to_srgb(np.array(skin_tone(baked.round().astype(np.uint8))))) * 255
    out["step to the head"] = float(np.abs(baked[ring] - head).mean())
    return out


def evaluate(faces: int, size: int, seed: int, model_path=None, truth_albedo=None, out: Path | None = None,
             log=print) -> dict:
    """The mean figures over `faces` faces; truth_albedo: the albedo model file the true albedos are drawn from
    (default the shipped one, which also fills the texture)."""
    data = read_model(resolve_model_path(model_path))
    model, renderer, mesh = FaceModel.from_data(data), HeadRenderer(data), TileMesh.from_data(data)
    albedo, truth_model = AlbedoModel.load(), AlbedoModel.load(truth_albedo)
    rows, sheet = [], []
    for i in range(faces):
        with torch.no_grad():
            face = synthetic_face(model, renderer, truth_model, i, seed)
            texture = extract_texture(face["photo"], face["cam"], mesh, FOCAL, face["sh"],
                                      landmark_box(face["landmarks"]), size, albedo)
        rows.append(measure(face, texture, mesh, size))
        log(f"face {i} (yaw {YAWS[(i // 2) % len(YAWS)]:.0f}): "
            + ", ".join(f"{k} {v:.3g}" for k, v in rows[-1].items()))
        if out is not None and i < 6:
            truth = _srgb255(face["truth"].permute(1, 2, 0)).round().astype(np.uint8)
            sheet.append([face["photo"], truth, texture.image])
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face["photo"]).save(out / f"face_{i}.png")
    summary = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "texture_eval.json").write_text(json.dumps({"faces": faces, "size": size, "seed": seed,
                                                           "mean": summary, "per_face": rows}, indent=1))
        cell = 256
        im = Image.new("RGB", (3 * cell, cell * len(sheet)), (255, 255, 255))
        for r, row in enumerate(sheet):
            for c, a in enumerate(row):
                im.paste(Image.fromarray(a).resize((cell, cell), Image.LANCZOS), (c * cell, r * cell))
        im.save(out / "texture_eval.png")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.texture_eval", description=__doc__.split("\n")[0])
    p.add_argument("--faces", type=int, default=12)
    p.add_argument("--size", type=int, default=1024, help="texture side (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="face model file")
    p.add_argument("--truth-albedo", help="albedo model file the true albedos come from (default: the shipped one)")
    p.add_argument("--out", type=Path, help="write texture_eval.json, a sheet of faces (photo | truth | baked) and "
                   "the first six photos (face_I.png)")
    args = p.parse_args(argv)
    try:
        summary = evaluate(args.faces, args.size, args.seed, args.model, args.truth_albedo, args.out,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    except MlafaceError as e:
        print(f"texture_eval: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.faces} synthetic faces, texture {args.size}: sRGB 0-255 error by region, leak, seams")
    for k, v in summary.items():
        print(f"  {k:28s} {v:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
