"""Lambertian shading under spherical-harmonics light: 9 coefficients (bands 0-2) per colour channel, 27 in all.

    colour = albedo * irradiance(normal),   irradiance_c(n) = sum_k sh[c, k] * basis_k(n)

`basis_k` is the real SH basis with the Lambertian convolution folded in (Ramamoorthi & Hanrahan 2001), so sh
holds light coefficients and a white ambient light of strength s is sh[c, 0] = s / (pi * Y00). Normals and the
light live in camera space (camera.py: +x right, +y up, +z towards the viewer), so the light turns with the camera,
not with the head. Coefficient order per channel: (1, y, z, x, xy, yz, 3z^2 - 1, xz, x^2 - y^2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..io.errors import MlafaceError
from .raster import Fragments, interpolate

SH_COEFFS = 27
_Y00 = 0.5 * math.sqrt(1 / math.pi)
_Y1 = math.sqrt(3 / (4 * math.pi))
_Y2 = 0.5 * math.sqrt(15 / math.pi)
_Y20 = 0.25 * math.sqrt(5 / math.pi)
_A0, _A1, _A2 = math.pi, 2 * math.pi / 3, math.pi / 4  # Lambertian kernel per band


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """normals: [..., 3] unit vectors -> [..., 9] irradiance basis."""
    x, y, z = normals.unbind(-1)
    return torch.stack([
        torch.full_like(x, _A0 * _Y00),
        _A1 * _Y1 * y, _A1 * _Y1 * z, _A1 * _Y1 * x,
        _A2 * _Y2 * x * y, _A2 * _Y2 * y * z, _A2 * _Y20 * (3 * z * z - 1), _A2 * _Y2 * x * z,
        _A2 * _Y2 * 0.5 * (x * x - y * y),
    ], dim=-1)


def ambient_sh(strength: float = 1.0, batch: int = 1) -> torch.Tensor:
    """[batch, 27] coefficients of a white light of equal strength from all sides (irradiance = strength)."""
    sh = torch.zeros(batch, 3, 9)
    sh[:, :, 0] = strength / (_A0 * _Y00)
    return sh.reshape(batch, SH_COEFFS)


def irradiance(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """normals: [B, ..., 3] unit, camera space; sh: [B, 27] (3 channels x 9) -> [B, ..., 3] RGB irradiance."""
    B = normals.shape[0]
    if sh.shape != (B, SH_COEFFS):
        raise MlafaceError(f"sh must be [B, {SH_COEFFS}] with B = {B}, got {tuple(sh.shape)}")
    basis = sh_basis(normals)  # [B, ..., 9]
    coeffs = sh.view(B, *([1] * (normals.dim() - 2)), 3, 9).to(basis.dtype)
    return (basis.unsqueeze(-2) * coeffs).sum(-1)


def shade(albedo: torch.Tensor, normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """albedo: [B, ..., 3] linear RGB in [0, 1]; normals: [B, ..., 3] unit, camera space; sh: [B, 27]
    -> [B, ..., 3] shaded colour (per vertex or per pixel, as the inputs are)."""
    return albedo * irradiance(normals, sh)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals of counter-clockwise triangles.

    verts: [B, V, 3]; faces: [F, 3] int64 -> [B, V, 3]; vertices in no triangle get (0, 0, 0).
    """
    corners = verts[:, faces]  # [B, F, 3, 3]
    face_n = torch.linalg.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    n = verts.new_zeros(verts.shape[1], verts.shape[0], 3)  # [V, B, 3]: index_add along dim 0 is ~10x faster
    for k in range(3):
        n = n.index_add(0, faces[:, k], face_n.transpose(0, 1))
    return torch.nn.functional.normalize(n.transpose(0, 1), dim=-1, eps=1e-12)


def shade_fragments(cam_verts: torch.Tensor, faces: torch.Tensor, frags: Fragments, albedo: torch.Tensor,
                    sh: torch.Tensor) -> torch.Tensor:
    """The shaded colour of a rasterized mesh: per-pixel normals interpolated from the vertex normals of `faces`.

    cam_verts: [B, V, 3] metres, camera space; faces: [F, 3] int64, the triangles `frags` was rasterized from;
    albedo: [B, H, W, 3] linear RGB per pixel; sh: [B, 27] -> [B, H, W, 3] linear RGB (0 normals where uncovered).
    """
    normals = F.normalize(interpolate(vertex_normals(cam_verts, faces), frags, faces), dim=-1)
    return shade(albedo, normals, sh)
