"""Unwrap a photo into the face's UV tile: an albedo texture for artists.

For every texel of the face-skin tile (UDIM 1001; the tile is mirror-symmetric, u <-> 1 - u, on ICT-FaceKit):
1. find its surface point by rasterizing the skin triangles in UV space (backend.render, once per size and
   process: `TileMesh.texels`); the rest works on the covered texels alone;
2. project the point into a window of the photo around the face; it counts where it lies inside the window and
   the z-buffer of the head rendered into a VISIBILITY_SIZE square over that window sees it, faded towards
   grazing angles (n . view from FADE to 1);
3. divide out the fitted SH shading (in linear RGB; the cosine and the irradiance are taken per vertex and
   interpolated) to get albedo;
4. fill what the photo does not show from the mirrored texel, and the rest from the albedo model fitted to what
   the photo shows (backend/model/albedo_model.py; without one, the median seen skin tone), blended by coverage so
   there are no hard seams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..detect.align import crop_from_box
from ..io.colour import linear_to_srgb, srgb_to_linear
from ..io.model_file import FaceModelData
from ..io.parts import ROLES
from ..model.albedo_model import AlbedoModel
from ..render.camera import crop_camera, project
from ..render.raster import Fragments, rasterize
from ..render.shading import irradiance, vertex_normals

FADE = (0.15, 0.5)  # cosine of the viewing angle: no weight below the first, full weight above the second
DEPTH_TOLERANCE = 0.004  # metres between a texel's depth and the z-buffer for it to count as seen
VISIBILITY_SIZE = 320  # the z-buffer's side: about 1 mm a pixel over the window around a face, at any texture size


@dataclass(frozen=True)
class Texels:
    """The covered texels of a size x size face tile: index [N] int64 into the flattened texture (row 0 at v = 1);
    triangle [N] int64 into TileMesh.triangles; bary [N, 3] their barycentrics there."""

    size: int
    index: torch.Tensor
    triangle: torch.Tensor
    bary: torch.Tensor

    def gather(self, attributes: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """attributes [V, C] at the texels -> [N, C], interpolated over faces [T, 3] (TileMesh.triangles)."""
        corners = attributes[faces[self.triangle]]  # [N, 3, C]
        return torch.bmm(self.bary[:, None, :], corners)[:, 0]

    def scatter(self, values: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """[N, C] or [N] at the texels -> [size, size, C] or [size, size], `fill` elsewhere."""
        out = values.new_full((self.size * self.size, *values.shape[1:]), fill)
        out[self.index] = values
        return out.view(self.size, self.size, *values.shape[1:])


@dataclass(frozen=True)
class TileMesh:
    """The head's opaque triangles and the face tile's UVs, as unwrap needs them.

    triangles: [T, 3] int64 vertex ids of the opaque parts; skin: [T] bool, triangles of the face tile;
    uvs: [U, 2] every UV corner shifted into 0..1 of the face tile; uv_faces: [T, 3] int64 UV corners;
    tile: the face tile's integer u offset (UDIM 1001 + tile)
    """

    triangles: torch.Tensor
    skin: torch.Tensor
    uvs: torch.Tensor
    uv_faces: torch.Tensor
    tile: int
    _texels: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_data(cls, d: FaceModelData, device: torch.device | str = "cpu") -> TileMesh:
        role = d.material_roles[d.polygon_material[d.triangle_polygon]]
        opaque = np.array([ROLES[str(r)].occludes for r in role])  # what hides the skin behind it
        tile = int(d.material_tiles[list(d.material_roles).index("face")])
        return cls(triangles=torch.from_numpy(d.triangles[opaque].astype(np.int64)).to(device),
                   skin=torch.from_numpy(role[opaque] == "face").to(device),
                   uvs=torch.from_numpy(d.corner_uv - np.array([tile, 0], np.float32)).to(device),
                   uv_faces=torch.from_numpy(d.triangle_corners[opaque].astype(np.int64)).to(device), tile=tile)

    def texels(self, size: int) -> Texels:
        """The face tile's covered texels at size x size (rasterized on first use, then kept)."""
        if size not in self._texels:
            skin = torch.nonzero(self.skin).squeeze(1)
            frags = uv_raster(self.uvs, self.uv_faces[skin], size)
            index = torch.nonzero(frags.mask[0].reshape(-1)).squeeze(1)
            self._texels[size] = Texels(size, index, skin[frags.face_id.reshape(-1)[index]],
                                        frags.bary.reshape(-1, 3)[index])
        return self._texels[size]


def uv_raster(uvs: torch.Tensor, uv_faces: torch.Tensor, size: int) -> Fragments:
    """Rasterize triangles in UV space: uvs [U, 2] (tile 0..1), uv_faces [T, 3] -> fragments of a size x size
    texture (row 0 at v = 1, the top of the image)."""
    pix = torch.stack([uvs[:, 0] * size, (1 - uvs[:, 1]) * size, torch.ones_like(uvs[:, 0])], dim=-1)
    return rasterize(pix[None], uv_faces, (size, size))


def unwrap(photo: np.ndarray, cam_verts: torch.Tensor, mesh: TileMesh, focal: float, sh: torch.Tensor,
           box: tuple[float, float, float, float], size: int = 1024) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1-3: the photo's albedo in the face tile, not filled.

    photo: [H, W, 3] uint8; cam_verts: [V, 3] camera space (fitted, with expression); mesh: the head's opaque
    triangles (they occlude) and face-tile UVs; focal: pixels; sh: [27] fitted light;
    box: the face's landmark box in photo pixels (the window is a square around it).
    -> albedo [size, size, 3] linear RGB in [0, 1]; weight [size, size] in [0, 1] (0 where unseen);
       covered [size, size] bool (texels inside the tile's triangles)
    """
    device, triangles = cam_verts.device, mesh.triangles
    texels = mesh.texels(size)
    window = crop_from_box(photo, box, size=size, scale=1.8)
    k, centre = crop_camera(photo.shape[:2], window.to_photo)
    principal = torch.tensor([centre], dtype=torch.float32, device=device)
    screen = project(cam_verts[None], focal / k, (size, size), principal)  # window pixels
    zoom = VISIBILITY_SIZE / size
    zbuf = rasterize(screen * screen.new_tensor([zoom, zoom, 1]), triangles, (VISIBILITY_SIZE,) * 2).depth

    # per vertex, then interpolated once: window position and depth, the grazing cosine and the SH irradiance
    # (smooth at the scale of a triangle, so per vertex loses nothing visible)
    normals = vertex_normals(cam_verts[None], triangles)[0]
    cosine = (normals * F.normalize(-cam_verts, dim=-1)).sum(-1, keepdim=True)
    shading = irradiance(normals[None], sh[None].to(normals))[0]
    at_texels = texels.gather(torch.cat([screen[0], cosine, shading], 1), triangles)  # [N, 7]
    where, cosine, shading = at_texels[:, :3], at_texels[:, 3], at_texels[:, 4:].clamp(min=0.05)

    # visibility: the texel's depth against the z-buffer where it lands
    grid = (where[None, None, :, :2] / size * 2 - 1)  # [1, 1, N, 2]
    seen_depth = F.grid_sample(zbuf[:, None], grid, mode="nearest", padding_mode="border", align_corners=False)
    inside = (grid[0, 0].abs() <= 1).all(-1)  # the window shows it
    visible = inside & (where[:, 2] <= seen_depth[0, 0, 0] + DEPTH_TOLERANCE)
    weight = visible * ((cosine - FADE[0]) / (FADE[1] - FADE[0])).clamp(0, 1)

    image = torch.from_numpy(window.image).to(device).permute(2, 0, 1).float()[None] / 255
    colour = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0].T
    albedo = (srgb_to_linear(colour) / shading).clamp(0, 1)
    return texels.scatter(albedo), texels.scatter(weight), texels.scatter(torch.ones_like(weight)).bool()


def extract_texture(photo: np.ndarray, cam_verts: torch.Tensor, mesh: TileMesh, focal: float, sh: torch.Tensor,
                    box: tuple[float, float, float, float], size: int = 1024,
                    albedo_model: AlbedoModel | None = None) -> np.ndarray:
    """The face albedo texture [size, size, 3] uint8 sRGB: `unwrap`, then step 4 (arguments as there)."""
    albedo, weight, covered = unwrap(photo, cam_verts, mesh, focal, sh, box, size)
    device = albedo.device
    w = weight[..., None]
    mirrored_albedo, w_m = albedo.flip(1), w.flip(1)
    both = w + (1 - w) * w_m
    combined = (w * albedo + (1 - w) * w_m * mirrored_albedo) / both.clamp(min=1e-6)
    if albedo_model is not None:
        coeffs = albedo_model.fit(combined.permute(2, 0, 1), both[..., 0] * covered)
        fill = F.interpolate(albedo_model(coeffs[None]), size=(size, size), mode="bilinear", align_corners=False)
        fill = fill[0].permute(1, 2, 0).clamp(0, 1)
    else:
        seen = both[..., 0] > 0.5
        fill = albedo[seen].median(0).values if seen.any() else torch.tensor([0.55, 0.4, 0.33], device=device)
    out = combined * both + fill * (1 - both)
    out = torch.where(covered[..., None], out, fill)  # UV gaps: no hard seams at tile edges
    return (linear_to_srgb(out) * 255).round().byte().cpu().numpy()
