"""The overlay picture: the fitted mesh and the landmarks drawn over the photo, to check a fit at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..detect.align import crop_from_box, landmark_box
from ..io.atomic import write_bytes_atomic
from ..io.face_result import FaceResult
from ..io.gltf import mesh_arrays
from ..io.images import png_bytes
from .camera import crop_camera, project, to_camera
from .raster import rasterize
from .shading import ambient_sh, shade_fragments


def write_overlay(r: FaceResult, photo: np.ndarray, path: str | Path, size: int = 768) -> Path:
    """A square window of the photo around the face (2.5 times the landmarks' box) with the fitted, shaded skin
    blended over it, its outline in green, the detected landmarks in red and the fitted ones in blue."""

    path = Path(path)
    window = crop_from_box(photo, landmark_box(r.landmarks), size=size, scale=2.5)
    k, centre = crop_camera(photo.shape[:2], window.to_photo)
    principal = torch.tensor([centre])
    vid, _, tris, tri_mat = mesh_arrays(r)
    skin_tris = torch.from_numpy(tris[np.isin(r.material_roles[tri_mat], ("face", "head"))].astype(np.int64))
    verts = torch.from_numpy(r.expressed_vertices()[vid]).float()
    cam = to_camera(verts[None], torch.from_numpy(r.rotation)[None], torch.from_numpy(r.translation)[None])
    frags = rasterize(project(cam, r.focal / k, (size, size), principal), skin_tris, (size, size),
                      cull_backfaces=True)
    sh = ambient_sh(0.55)
    sh[0, [2, 11, 20]] = 0.45  # light from the camera
    grey = shade_fragments(cam, skin_tris, frags, torch.full((1, size, size, 3), 0.85), sh)
    grey, mask = grey.clamp(0, 1)[0].numpy(), frags.mask[0].numpy()
    out = window.image.astype(np.float32) / 255
    out[mask] = 0.45 * out[mask] + 0.55 * grey[mask]
    edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
    out[edge] = (0.1, 0.9, 0.2)
    img = Image.fromarray((out * 255).round().astype(np.uint8))
    d = ImageDraw.Draw(img)
    for pts, colour in ((r.landmarks, (255, 40, 40)), (r.fitted_landmarks, (60, 120, 255))):
        for x, y in window.points_to_crop(pts.astype(np.float64)):
            d.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=colour)
    write_bytes_atomic(path, png_bytes(np.asarray(img)))
    return path
