"""Render the ICT head with our renderer under a few spherical-harmonics lights and expressions, to a PNG.

    python scripts/render_head.py [--model FILE] [--size 512] [-o docs/render_head.png]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from PIL import Image

from backend.io.model_file import read_model
from backend.model.face_model import FaceModel
from backend.model.store import resolve_model_path
from backend.render.camera import focal_from_fov, project
from backend.render.raster import interpolate, rasterize
from backend.render.shading import ambient_sh, shade, vertex_normals

PART_COLOURS = {"skin": (0.72, 0.55, 0.46), "mouth": (0.55, 0.2, 0.2), "teeth": (0.9, 0.88, 0.8),
                "eye": (0.85, 0.85, 0.85), "eyelashes": (0.1, 0.08, 0.07)}


def yaw(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("-o", "--output", default="docs/render_head.png")
    args = parser.parse_args()
    data = read_model(resolve_model_path(args.model))
    model = FaceModel.from_data(data)
    parts = data.material_parts[data.polygon_material[data.triangle_polygon]]
    keep = torch.from_numpy(np.isin(parts, list(PART_COLOURS)))
    faces = model.triangles[keep]
    colour = torch.full((model.n_vertices, 3), 0.5)
    for part, rgb in PART_COLOURS.items():
        colour[model.triangles[torch.from_numpy(parts == part)].reshape(-1)] = torch.tensor(rgb)

    expressions = [{}, {"jawOpen": 0.6, "mouthSmileLeft": 0.7, "mouthSmileRight": 0.7}, {"eyeBlinkLeft": 1.0}]
    lights = ambient_sh(0.6, 3)
    lights[1, [2, 11, 20]] = 0.5  # key light from the front
    lights[2, [3, 12, 21]] = 0.6  # from the subject's left (+x)
    lights[2, [1, 10, 19]] = 0.3  # and above
    lights[0, [3, 12, 21]] = -0.3
    B = 3
    expression = torch.zeros(B, model.n_expression)
    for b, e in enumerate(expressions):
        for name, w in e.items():
            expression[b, model.expression_names.index(name)] = w
    verts = model.vertices(torch.zeros(B, model.n_identity), expression)
    verts = torch.stack([verts[b] @ yaw(a).T for b, a in enumerate((0, 25, -35))])
    cam = verts + torch.tensor([0.0, 0.02, -0.75])
    size = (args.size, args.size)
    frags = rasterize(project(cam, focal_from_fov(size, 30.0), size), faces, size, cull_backfaces=True)
    normals = interpolate(vertex_normals(cam, model.triangles), frags, faces)
    normals = torch.nn.functional.normalize(normals, dim=-1)
    albedo = interpolate(colour, frags, faces)
    rgb = shade(albedo, normals, lights).clamp(0, 1) ** (1 / 2.2)
    rgb = torch.where(frags.mask[..., None], rgb, torch.tensor([1.0, 1.0, 1.0]))
    strip = torch.cat(list(rgb), dim=1)
    Image.fromarray((strip.numpy() * 255).round().astype(np.uint8)).save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
