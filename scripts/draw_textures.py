"""The baked face texture beside what it kept: per photo a row of the photo, the texture, the skin mask (the
photo's visibility x skin weight, white = kept from the photo) and where each texel's detail came from (photo
red, mirror green, albedo model blue). The texture is baked again from the reconstruction's own fit, exactly as
`mlaface reconstruct` bakes it.

    python scripts/draw_textures.py PHOTO [PHOTO ...] -o docs/textures.png [--size 1024]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from backend.detect.align import landmark_box
from backend.io.face_result import FaceResult
from backend.io.images import load_image
from backend.reconstruct.pipeline import ReconstructOptions, Reconstructor
from backend.reconstruct.texture import Texture, extract_texture

CELL = 320
SOURCE_COLOURS = np.array([[220, 60, 50], [60, 180, 80], [60, 90, 220]], np.uint8)  # photo, mirror, model


def bake(rec: Reconstructor, image: np.ndarray, r: FaceResult, size: int) -> Texture:
    """The texture of a FaceResult baked again from its fit (camera-space vertices, focal, light, fitted points)."""
    cam = torch.from_numpy(r.expressed_vertices() @ r.rotation.T + r.translation).to(rec.device)
    return extract_texture(image, cam, rec.tile_mesh, r.focal, torch.from_numpy(r.sh).to(rec.device),
                           landmark_box(r.fitted_landmarks), size, rec.albedo_model)


def cell(a: np.ndarray) -> Image.Image:
    im = Image.fromarray(a)
    w, h = im.size
    s = CELL / max(w, h)
    return im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    rec = Reconstructor(ReconstructOptions(texture_size=args.size))
    rows = []
    for path in args.photos:
        image = load_image(path)
        t = bake(rec, image, rec.reconstruct(path)[0], args.size)
        mask = (np.clip(t.seen * t.skin, 0, 1) * 255).astype(np.uint8)
        rows.append([cell(image), cell(t.image), cell(mask), cell(SOURCE_COLOURS[t.source])])
    sheet = Image.new("RGB", (4 * CELL, CELL * len(rows)), (255, 255, 255))
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            sheet.paste(im, (j * CELL + (CELL - im.size[0]) // 2, i * CELL + (CELL - im.size[1]) // 2))
    sheet.save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
