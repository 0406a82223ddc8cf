"""Render the face (the model's front-face subset) with an albedo map and SH light: the synthetic data's images
and the photometric loss's prediction, through backend.render.raster (differentiable, CPU and CUDA). HeadRenderer draws
the whole head instead (eyeballs, a lash line, teeth, mouth), for test footage that a landmark detector reads as a face.

Images are [B, 3, S, S] linear RGB; cameras are the network's crop cameras (principal point at the crop centre).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from backend.model.albedo_model import AlbedoModel
from backend.render.camera import project
from backend.model.face_model import FaceModel
from backend.io.model_file import FaceModelData
from backend.render.raster import interpolate, rasterize, texture
from backend.render.shading import ambient_sh, shade, vertex_normals


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


# linear RGB albedo of the parts that are not skin
PART_ALBEDO = {"sclera": (0.55, 0.50, 0.45), "iris": (0.10, 0.06, 0.03), "pupil": (0.01, 0.01, 0.01),
               "mouth": (0.22, 0.05, 0.05), "teeth": (0.60, 0.55, 0.45)}


EYE_KINDS = ("sclera", "iris", "pupil")  # the eyeball materials M_Sclera*, M_Iris*, M_Pupil* (backend/model/facekit.py)
HIDDEN_PARTS = ("eye_helper", "eyelashes")  # ICT's lash cards, opaque, are a thick dark band
LINER = (0.9, 0.5)  # darkening of the upper and lower lid's rim, where the lashes grow


def _lid_liner(data: FaceModelData, tri_kind: list[str]) -> np.ndarray:
    """[V] float32: how much to darken each face-skin vertex: LINER (upper, lower lid) near the roots of ICT's lash
    cards (their vertices within 0.5 mm of the skin), fading over about a millimetre; 0 elsewhere."""
    kinds = np.array(tri_kind)
    skin = np.unique(data.triangles[kinds == "face"])
    lashes = np.unique(data.triangles[kinds == "eyelashes"])
    near_skin = cKDTree(data.mean[skin]).query(data.mean[lashes])[0] < 5e-4
    roots = data.mean[lashes[near_skin]]
    dist, nearest = cKDTree(roots).query(data.mean[skin])
    eye_height = data.mean[data.triangles[kinds == "sclera"]].reshape(-1, 3)[:, 1].mean()
    upper = roots[nearest, 1] > eye_height
    out = np.zeros(len(data.mean), np.float32)
    out[skin] = np.where(upper, LINER[0], LINER[1]) * np.exp(-((dist / 1e-3) ** 2))
    return out


class HeadRenderer:
    """The whole head of the full model (FaceModel.from_data(data)): the face skin textured from a face-tile
    albedo map, the back of the head in that map's mean colour, sclera, iris, pupil, mouth and teeth in
    PART_ALBEDO, a dark line on the lid rims for the lashes; the see-through eye layers (tear film, occlusion
    shadow, cornea) and ICT's lash cards (an opaque dark band) left out."""

    def __init__(self, data: FaceModelData, device: torch.device | str = "cpu"):
        names = [str(n) for n in data.material_names]
        parts = [str(p) for p in data.material_parts]
        kind = ["face" if n == "M_Face" else next((k for k in EYE_KINDS if n.startswith(f"M_{k.title()}")), p)
                for n, p in zip(names, parts, strict=True)]
        tri_kind = [kind[m] for m in data.polygon_material[data.triangle_polygon]]
        keep = torch.tensor([k not in HIDDEN_PARTS for k in tri_kind])
        self.faces = torch.as_tensor(data.triangles, dtype=torch.int64)[keep].to(device)
        kinds = [k for k, kept in zip(tri_kind, keep.tolist(), strict=True) if kept]
        self.is_face = torch.tensor([k == "face" for k in kinds], device=device)
        self.is_back = torch.tensor([k == "skin" for k in kinds], device=device)
        table = {k: torch.tensor(PART_ALBEDO.get(k, (0.0, 0.0, 0.0))) for k in set(kinds)}
        self.part_albedo = torch.stack([table[k] for k in kinds]).to(device)  # [T, 3]
        self.liner = torch.as_tensor(_lid_liner(data, tri_kind), device=device)
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
    from backend.network.mlanet import CROP_DEPTH, CROP_FOCAL

    B = len(coeffs)
    verts = model.vertices(torch.zeros(B, model.n_identity), torch.zeros(B, model.n_expression))
    cam = verts + torch.tensor([0.0, 0.0, -CROP_DEPTH * 1.1])
    sh = ambient_sh(0.9, B).view(B, 3, 9)
    sh[:, :, 1], sh[:, :, 3] = 0.25, -0.2  # light from above and the camera's left
    image, mask = FaceRenderer(model).render(cam, torch.full((B,), CROP_FOCAL * size / 224), albedo(coeffs),
                                             sh.view(B, 27), size)
    return torch.where(mask[:, None], image, torch.ones_like(image))
