"""Draw what the network trains on: a row of synthetic faces with their 68 landmarks (green), and a row after the
crop augmentation (training/real_data.py) with the 21 AFLW points (red = left side in the image, blue = right,
yellow = midline), applied to synthetic stand-ins, or to real AFLW crops with --crops (for looking only).

    python scripts/draw_training_batch.py [--crops ../shared/data/aflw-crops] [-o docs/training_batch.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from backend.model.albedo_model import AlbedoModel
from backend.model.face_model import FaceModel
from training.aflw_crops import load_crops
from training.real_data import RealFaces
from training.synthetic import SyntheticFaces

LEFT_POINTS = {0, 1, 2, 6, 7, 8, 12, 13, 17}


def draw(image: torch.Tensor, points: torch.Tensor, visible: torch.Tensor | None, aflw: bool, scale: int) -> Image:
    im = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    d = ImageDraw.Draw(im)
    for i, (x, y) in enumerate(points.tolist()):
        if visible is not None and not visible[i]:
            continue
        colour = ("red" if i in LEFT_POINTS else "blue" if i not in (14, 18, 20) else "yellow") if aflw else "lime"
        cx, cy = (x + 0.5) * scale, (y + 0.5) * scale
        d.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
    return im


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--crops", help="draw real AFLW crops in the second row (for looking only: AFLW is not ours to "
                                   "publish, so the committed picture uses synthetic faces there too)")
    p.add_argument("--albedo")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("-o", "--output", default="docs/training_batch.png")
    args = p.parse_args()
    n, S, scale = 8, args.size, 2
    g = torch.Generator().manual_seed(1)
    model = FaceModel.load().face_subset()
    albedo = AlbedoModel.load(args.albedo)
    if args.crops:
        _, images, pts, _ = load_crops(args.crops, limit=400)
        backgrounds = torch.from_numpy(images).permute(0, 3, 1, 2)
    else:  # stand-ins for the crops: synthetic faces at the crops' 120 px, with their 21 points
        faces = SyntheticFaces(model, albedo, 120).sample(n, torch.Generator().manual_seed(2))
        images = (faces["image"].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        pts, backgrounds = faces["lm21"].numpy(), None
    s = SyntheticFaces(model, albedo, S, backgrounds).sample(n, g)
    index = torch.arange(n) * 37 % len(images)
    real = RealFaces(images, pts, S).sample(index, g)
    sheet = Image.new("RGB", (n * S * scale, 2 * S * scale), "white")
    for i in range(n):
        sheet.paste(draw(s["image"][i], s["lm68"][i], None, False, scale), (i * S * scale, 0))
        sheet.paste(draw(real["image"][i], real["lm21"][i], real["vis21"][i], True, scale), (i * S * scale, S * scale))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
