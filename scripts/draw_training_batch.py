"""Draw what the network trains on: a row of synthetic faces and a row of augmented AFLW crops, with their
landmarks (68 green on synthetic; 21 AFLW points, red = the subject's left side in the image, blue = right).

    python scripts/draw_training_batch.py [--crops ../shared/data/aflw-crops] [-o docs/training_batch.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from backend.albedo_model import AlbedoModel
from backend.face_model import FaceModel
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
    p.add_argument("--crops", default="../shared/data/aflw-crops")
    p.add_argument("--albedo")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("-o", "--output", default="docs/training_batch.png")
    args = p.parse_args()
    n, S, scale = 8, args.size, 2
    g = torch.Generator().manual_seed(1)
    model = FaceModel.load().face_subset()
    _, images, pts, _ = load_crops(args.crops, limit=400)
    synth = SyntheticFaces(model, AlbedoModel.load(args.albedo), S,
                           torch.from_numpy(images).permute(0, 3, 1, 2))
    s = synth.sample(n, g)
    real = RealFaces(images, pts, S).sample(torch.arange(n) * 37, g)
    sheet = Image.new("RGB", (n * S * scale, 2 * S * scale), "white")
    for i in range(n):
        sheet.paste(draw(s["image"][i], s["lm68"][i], None, False, scale), (i * S * scale, 0))
        sheet.paste(draw(real["image"][i], real["lm21"][i], real["vis21"][i], True, scale), (i * S * scale, S * scale))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
