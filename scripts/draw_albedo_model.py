"""Draw the albedo model: the mean face tile, then mean +- 2 sigma along the first components, and renders of the
mean face with the mean albedo and with random samples.

    python scripts/draw_albedo_model.py [--albedo FILE] [-o docs/albedo_model.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from backend.io.colour import linear_to_srgb
from backend.model.albedo_model import AlbedoModel
from backend.model.face_model import FaceModel
from backend.network.decode import CROP_DEPTH, CROP_FOCAL
from backend.render.head import FaceRenderer
from backend.render.shading import ambient_sh


@torch.no_grad()
def render_albedo_faces(model: FaceModel, albedo: AlbedoModel, coeffs: torch.Tensor, size: int) -> torch.Tensor:
    """The mean face, frontal, lit from the upper left, with albedo coefficients [B, K] -> [B, 3, size, size]
    linear RGB on white (for pictures)."""
    B = len(coeffs)
    verts = model.vertices(torch.zeros(B, model.n_identity), torch.zeros(B, model.n_expression))
    cam = verts + torch.tensor([0.0, 0.0, -CROP_DEPTH * 1.1])
    sh = ambient_sh(0.9, B).view(B, 3, 9)
    sh[:, :, 1], sh[:, :, 3] = 0.25, -0.2  # light from above and the camera's left
    image, mask = FaceRenderer(model).render(cam, torch.full((B,), CROP_FOCAL * size / 224), albedo(coeffs),
                                             sh.view(B, 27), size)
    return torch.where(mask[:, None], image, torch.ones_like(image))


def to_image(linear: torch.Tensor) -> Image.Image:
    """[3, S, S] linear RGB -> PIL sRGB."""
    return Image.fromarray((linear_to_srgb(linear).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--albedo")
    p.add_argument("-o", "--output", default="docs/albedo_model.png")
    args = p.parse_args()
    albedo = AlbedoModel.load(args.albedo)
    tiles = [("mean", albedo(torch.zeros(1, albedo.n_components))[0])]
    for k in range(3):
        for sign in (-2, 2):
            c = torch.zeros(1, albedo.n_components)
            c[0, k] = sign
            tiles.append((f"c{k + 1} {sign:+d}s", albedo(c)[0]))
    cell = 160
    sheet = Image.new("RGB", (cell * 7, cell * 2 + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, tile) in enumerate(tiles):
        sheet.paste(to_image(tile).resize((cell, cell)), (i * cell, 0))
        draw.text((i * cell + 4, cell + 2), label, fill="black")
    model = FaceModel.load().face_subset()
    g = torch.Generator().manual_seed(3)
    coeffs = torch.cat([torch.zeros(1, albedo.n_components), torch.randn(6, albedo.n_components, generator=g)])
    renders = render_albedo_faces(model, albedo, coeffs, cell)
    for i, r in enumerate(renders):
        sheet.paste(to_image(r).resize((cell, cell)), (i * cell, cell + 20))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output)
    print(f"wrote {args.output}: {albedo.n_components} components; {albedo.source}")


if __name__ == "__main__":
    main()
