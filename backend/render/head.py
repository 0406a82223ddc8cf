"""Rendering the face model with its albedo map and SH light, through render/raster.py (differentiable, CPU and CUDA):
FaceRenderer draws the front face (the model's face subset), for synthetic training images and the photometric
loss; HeadRenderer draws the whole head (eyeballs, a lash line, teeth, mouth), for footage that a landmark detector
reads as a face (the test clip of clip/synthetic_clip.py).

Images are [B, 3, S, S] linear RGB; cameras have their principal point at the image centre (render/camera.py).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..io.model_file import FaceModelData
from ..io.parts import ROLES
from ..model.face_model import FaceModel
from .camera import project
from .raster import interpolate, rasterize, texture
from .shading import shade_fragments


class FaceRenderer:
    """model: the front-face subset (FaceModel.face_subset()); its triangle UVs index the face tile."""

    def __init__(self, model: FaceModel):
        self.faces = model.triangles
        T = len(self.faces)
        self.corner_faces = torch.arange(T * 3, device=self.faces.device).view(T, 3)
        self.corner_uvs = model.triangle_uvs.reshape(1, T * 3, 2)

    def render(self, cam_verts: torch.Tensor, focal: torch.Tensor, albedo: torch.Tensor, sh: torch.Tensor,
               size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cam_verts: [B, V, 3] metres, camera space; focal: [B] pixels at `size`; albedo: [B, 3, S, S] linear
        face-tile maps; sh: [B, 27] -> (image [B, 3, size, size] linear RGB, 0 where uncovered;
        mask [B, size, size] bool)."""
        B = cam_verts.shape[0]
        screen = project(cam_verts, focal, (size, size))
        frags = rasterize(screen, self.faces, (size, size), cull_backfaces=True)
        uv = interpolate(self.corner_uvs.expand(B, -1, -1), frags, self.corner_faces)
        image = shade_fragments(cam_verts, self.faces, frags, texture(albedo, uv), sh) * frags.mask[..., None]
        return image.permute(0, 3, 1, 2), frags.mask


LINER = (0.9, 0.5)  # darkening of the upper and lower lid's rim, where the lashes grow


def _lid_liner(data: FaceModelData, tri_role: list[str]) -> np.ndarray:
    """[V] float32: how much to darken each face-skin vertex: LINER (upper, lower lid) near the roots of ICT's lash
    cards (their vertices within 0.5 mm of the skin), fading over about a millimetre; 0 elsewhere."""
    roles = np.array(tri_role)
    skin = np.unique(data.triangles[roles == "face"])
    lashes = np.unique(data.triangles[roles == "eyelashes"])
    near_skin = cKDTree(data.mean[skin]).query(data.mean[lashes])[0] < 5e-4
    roots = data.mean[lashes[near_skin]]
    dist, nearest = cKDTree(roots).query(data.mean[skin])
    eye_height = data.mean[data.triangles[roles == "sclera"]].reshape(-1, 3)[:, 1].mean()
    upper = roots[nearest, 1] > eye_height
    out = np.zeros(len(data.mean), np.float32)
    out[skin] = np.where(upper, LINER[0], LINER[1]) * np.exp(-((dist / 1e-3) ** 2))
    return out


class HeadRenderer:
    """The whole head of the full model (FaceModel.from_data(data)): the face skin textured from a face-tile
    albedo map, the rest of the head in that map's mean colour, the eyes, mouth and teeth in their colours of
    io.parts.ROLES, a dark line on the lid rims for the lashes; what hides nothing (the see-through eye layers and
    ICT's lash cards, which are an opaque dark band when drawn) left out."""

    def __init__(self, data: FaceModelData, device: torch.device | str = "cpu"):
        tri_role = [str(data.material_roles[m]) for m in data.polygon_material[data.triangle_polygon]]
        keep = torch.tensor([ROLES[r].occludes for r in tri_role])
        self.faces = torch.tensor(data.triangles, dtype=torch.int64)[keep].to(device)
        roles = [r for r, kept in zip(tri_role, keep.tolist(), strict=True) if kept]
        self.is_face = torch.tensor([r == "face" for r in roles], device=device)
        self.is_back = torch.tensor([r == "head" for r in roles], device=device)
        self.part_albedo = torch.tensor([ROLES[r].colour for r in roles], device=device)  # [T, 3]
        self.liner = torch.as_tensor(_lid_liner(data, tri_role), device=device)
        uv = torch.as_tensor(data.corner_uv[data.triangle_corners], dtype=torch.float32)[keep]
        T = len(self.faces)
        self.corner_faces = torch.arange(T * 3, device=device).view(T, 3)
        self.corner_uvs = uv.reshape(1, T * 3, 2).to(device)

    def render(self, cam_verts: torch.Tensor, focal: torch.Tensor, albedo: torch.Tensor, sh: torch.Tensor,
               size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cam_verts: [B, V, 3] metres, camera space, all vertices of the model; focal: [B] pixels at `size`;
        albedo: [B, 3, S, S] linear face-tile maps; sh: [B, 27]
        -> (image [B, 3, size, size] linear RGB, 0 where uncovered; mask [B, size, size] bool)."""
        B = cam_verts.shape[0]
        frags = rasterize(project(cam_verts, focal, (size, size)), self.faces, (size, size))
        tri = frags.face_id.clamp(min=0)
        uv = interpolate(self.corner_uvs.expand(B, -1, -1), frags, self.corner_faces)
        colour = self.part_albedo[tri]
        colour = torch.where(self.is_back[tri][..., None], albedo.mean((2, 3))[:, None, None], colour)
        liner = interpolate(self.liner[:, None], frags, self.faces)
        colour = torch.where(self.is_face[tri][..., None], texture(albedo, uv) * (1 - liner), colour)
        image = shade_fragments(cam_verts, self.faces, frags, colour, sh) * frags.mask[..., None]
        return image.permute(0, 3, 1, 2), frags.mask
