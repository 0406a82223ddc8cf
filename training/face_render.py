"""Render the face (the model's front-face subset) with an albedo map and SH light: the synthetic data's images
and the photometric loss's prediction, through backend.render (differentiable, CPU and CUDA).

Images are [B, 3, S, S] linear RGB; cameras are the network's crop cameras (principal point at the crop centre).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from backend.albedo_model import AlbedoModel
from backend.camera import project
from backend.face_model import FaceModel
from backend.render import interpolate, rasterize, texture
from backend.shading import ambient_sh, shade, vertex_normals


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
        colour = texture(albedo, uv)
        normals = F.normalize(interpolate(vertex_normals(cam_verts, self.faces), frags, self.faces), dim=-1)
        image = shade(colour, normals, sh) * frags.mask[..., None]
        return image.permute(0, 3, 1, 2), frags.mask


HOLE_KERNEL = 9  # pixels: closes the eye and mouth openings of the face subset at 128 px and above


def fill_holes(image: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """The face subset has no eyeballs or mouth interior: pixels inside its openings (uncovered, but inside the
    mask's morphological closing) get `colour` ([B, 3, 1, 1]) instead of the background.
    image: [B, 3, S, S]; mask: [B, S, S] bool."""
    m = mask[:, None].float()
    k = HOLE_KERNEL
    closed = -F.max_pool2d(-F.max_pool2d(m, k, 1, k // 2), k, 1, k // 2)
    return torch.where((closed > 0) & (m == 0), colour.expand_as(image), image)


@torch.no_grad()
def render_albedo_faces(model: FaceModel, albedo: AlbedoModel, coeffs: torch.Tensor, size: int) -> torch.Tensor:
    """The mean face, frontal, lit from the upper left, with albedo coefficients [B, K] -> [B, 3, size, size]
    linear RGB on white (for pictures)."""
    from backend.network import CROP_DEPTH, CROP_FOCAL

    B = len(coeffs)
    verts = model.vertices(torch.zeros(B, model.n_identity), torch.zeros(B, model.n_expression))
    cam = verts + torch.tensor([0.0, 0.0, -CROP_DEPTH * 1.1])
    sh = ambient_sh(0.9, B).view(B, 3, 9)
    sh[:, :, 1], sh[:, :, 3] = 0.25, -0.2  # light from above and the camera's left
    image, mask = FaceRenderer(model).render(cam, torch.full((B,), CROP_FOCAL * size / 224), albedo(coeffs),
                                             sh.view(B, 27), size)
    return torch.where(mask[:, None], image, torch.ones_like(image))
