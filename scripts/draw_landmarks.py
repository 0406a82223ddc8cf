"""Detect faces and 68 landmarks on photos and draw them: each photo with boxes and points, and the aligned
224 x 224 crop of its largest face beneath, to one PNG. Without photos: scikit-image's astronaut (public domain).

    python scripts/draw_landmarks.py [PHOTOS...] [--provider auto] [-o docs/landmarks_overlay.png]
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

from backend.detect.align import align_face
from backend.detect.landmarks import detect_faces, get_provider
from backend.io.images import find_photos, load_image

TILE = 360


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*")
    parser.add_argument("--provider", default="auto")
    parser.add_argument("-o", "--output", default="docs/landmarks_overlay.png")
    args = parser.parse_args()
    provider = get_provider(args.provider)
    images = [(p.name, load_image(p)) for p in find_photos(args.photos)]
    if not images:
        from skimage.data import astronaut

        images = [("astronaut", astronaut())]
    sheet = Image.new("RGB", (TILE * len(images), TILE + 224 + 20), "white")
    for k, (name, image) in enumerate(images):
        faces = detect_faces(provider, image, name)
        scale = TILE / max(image.shape[:2])
        tile = Image.fromarray(image).resize((round(image.shape[1] * scale), round(image.shape[0] * scale)))
        d = ImageDraw.Draw(tile)
        for face in faces:
            d.rectangle([v * scale for v in face.box], outline=(255, 220, 0), width=2)
            for x, y in (face.landmarks + 0.5) * scale:
                d.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(255, 40, 40))
        sheet.paste(tile, (k * TILE, 0))
        crop = align_face(image, faces[0].landmarks, 224)
        c = Image.fromarray(crop.image)
        dc = ImageDraw.Draw(c)
        for x, y in crop.points_to_crop(faces[0].landmarks.astype(np.float64)):
            dc.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=(40, 255, 40))
        sheet.paste(c, (k * TILE + (TILE - 224) // 2, TILE + 10))
        ImageDraw.Draw(sheet).text((k * TILE + 5, TILE + 236), f"{name}: {len(faces)} face(s), {provider.name}",
                                   fill="black")
    sheet.save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
