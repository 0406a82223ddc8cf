"""Draw the neutral face model with its 68 iBUG (red) and 21 AFLW (blue) landmark vertices, from the front and
from each side, to a PNG. A flat-shaded orthographic painter's-algorithm drawing, independent of the renderer.

    python scripts/draw_model_landmarks.py [--model FILE] [-o docs/model_landmarks.png]
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

from backend.io.model_file import read_model
from backend.model.store import resolve_model_path

SIZE = 700


def yaw_matrix(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def draw_view(data, yaw: float) -> Image.Image:
    keep = np.isin(data.material_parts[data.polygon_material[data.triangle_polygon]], ["skin", "eye", "teeth"])
    tri = data.triangles[keep]
    p = data.mean @ yaw_matrix(yaw).T
    frame = p[data.landmarks_ibug68]
    scale = SIZE * 0.45 / (frame[:, 1].max() - frame[:, 1].min())
    centre = (frame.max(0) + frame.min(0)) / 2
    def to_px(q):
        return np.stack([SIZE / 2 + scale * (q[..., 0] - centre[0]),
                                    SIZE / 2 - scale * (q[..., 1] - centre[1])], -1)
    corners = p[tri]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    front = normals[:, 2] > 0
    order = np.argsort(corners[:, :, 2].mean(1))
    img = Image.new("RGB", (SIZE, SIZE), "white")
    d = ImageDraw.Draw(img)
    px = to_px(corners)
    for t in order:
        if front[t]:
            g = int(70 + 170 * normals[t, 2])
            d.polygon([tuple(c) for c in px[t]], fill=(g, g, g))
    vertex_normals = np.zeros_like(p)
    for k in range(3):
        np.add.at(vertex_normals, tri[:, k], normals)
    for ids, colour, r in ((data.landmarks_ibug68, (220, 30, 30), 3), (data.landmarks_aflw21, (30, 60, 230), 5)):
        for k, (x, y) in enumerate(to_px(p[ids])):
            if vertex_normals[ids[k], 2] <= 0:
                continue  # faces away from the viewer: hidden
            d.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2)
            if r == 5:
                d.text((x + 6, y - 4), str(k), fill=colour)
    d.text((10, 10), f"yaw {yaw:+.0f} deg", fill="black")
    return img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("-o", "--output", default="docs/model_landmarks.png")
    args = parser.parse_args()
    data = read_model(resolve_model_path(args.model))
    views = [draw_view(data, yaw) for yaw in (-80, 0, 80)]
    out = Image.new("RGB", (SIZE * len(views), SIZE), "white")
    for i, v in enumerate(views):
        out.paste(v, (i * SIZE, 0))
    ImageDraw.Draw(out).text((10, SIZE - 20), "red: iBUG 68   blue: AFLW 21 (numbered)", fill="black")
    out.save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
