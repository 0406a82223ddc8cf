"""Unwrap a photo into the face's UV tile: an albedo texture for artists.

For every texel of the face-skin tile (UDIM 1001; the tile is mirror-symmetric, u <-> 1 - u, on ICT-FaceKit):
1. find its surface point by rasterizing the skin triangles in UV space (backend.render, once per size and
   process: `TileMesh.texels`); the rest works on the covered texels alone;
2. project the point into a window of the photo around the face; it counts where it lies inside the window and the
   photo and the z-buffer of the head rendered into a VISIBILITY_SIZE square over that window sees it, faded
   towards grazing angles (n . view from FADE to 1); its colour is sampled once, bilinearly, from the photo's
   pixels under the window (box-filtered when the window shrinks them), in linear RGB;
3. divide out the fitted SH shading (in linear RGB; the cosine and the irradiance are taken per vertex and
   interpolated) to get albedo;
4. keep what is skin (skin.py: not the eye openings or the inside of the lips, and of the colour the photo's own
   reliable skin and the albedo model lead to expect: no hair, glasses, clothes or background), then fill the rest,
   texel by texel, from the skin at the mirrored texel, else from the albedo model fitted to all the kept skin, the
   three merged band by band (fill.multiband_blend: no seam at the edge of what was seen or at the symmetry line, no
   doubled detail); the eye openings and inner lips take the skin around them (fill.push_pull); the tile's outer
   band fades to the skin tone the rest of the head gets (io.face_result.skin_tone), so the tile has no edge.
   Step 4 decides and blends at half the texture's size and adds the photo's finest band at full size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..detect.align import box_map, photo_region
from ..io.colour import linear_to_srgb, srgb_to_linear
from ..io.face_result import median_tone, skin_tone_window
from ..io.model_file import FaceModelData
from ..io.parts import ROLES
from ..model.albedo_model import AlbedoModel
from ..render.camera import crop_camera, project
from ..render.raster import Fragments, rasterize
from ..render.shading import irradiance, vertex_normals
from .fill import down, multiband_blend, push_pull, up
from .skin import TileRegions, skin_weight

FADE = (0.15, 0.5)  # cosine of the viewing angle: no weight below the first, full weight above the second
DEPTH_TOLERANCE = 0.004  # metres between a texel's depth and the z-buffer for it to count as seen
VISIBILITY_SIZE = 320  # the z-buffer's side: about 1 mm a pixel over the window around a face, at any texture size
LINEAR = srgb_to_linear(np.arange(256, dtype=np.float32) / 255)  # [256] linear RGB of each 8-bit sRGB value


@dataclass(frozen=True)
class Texels:
    """The covered texels of a size x size face tile: index [N] int64 into the flattened texture (row 0 at v = 1);
    interpolation [N, V] sparse CSR, each texel's barycentric weights on the three vertices of its triangle."""

    size: int
    index: torch.Tensor
    interpolation: torch.Tensor

    def gather(self, attributes: torch.Tensor) -> torch.Tensor:
        """attributes [V, C] of every vertex -> [N, C] interpolated at the texels."""
        return self.interpolation @ attributes

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
    tile: the face tile's integer u offset (UDIM 1001 + tile); landmark_uv: [68, 2] float32 the ibug-68 landmark
    vertices' UVs in the tile; n_vertices: the model's vertex count (what Texels.gather interpolates)
    """

    triangles: torch.Tensor
    skin: torch.Tensor
    uvs: torch.Tensor
    uv_faces: torch.Tensor
    tile: int
    landmark_uv: np.ndarray
    n_vertices: int
    _per_size: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_data(cls, d: FaceModelData, device: torch.device | str = "cpu") -> TileMesh:
        role = d.material_roles[d.polygon_material[d.triangle_polygon]]
        opaque = np.array([ROLES[str(r)].occludes for r in role])  # what hides the skin behind it
        tile = int(d.material_tiles[list(d.material_roles).index("face")])
        uvs = d.corner_uv - np.array([tile, 0], np.float32)
        face = role == "face"
        corner_of = dict(zip(d.triangles[face].reshape(-1).tolist(), d.triangle_corners[face].reshape(-1).tolist(),
                             strict=True))
        return cls(triangles=torch.from_numpy(d.triangles[opaque].astype(np.int64)).to(device),
                   skin=torch.from_numpy(face[opaque]).to(device), uvs=torch.from_numpy(uvs).to(device),
                   uv_faces=torch.from_numpy(d.triangle_corners[opaque].astype(np.int64)).to(device), tile=tile,
                   landmark_uv=uvs[[corner_of[int(v)] for v in d.landmarks_detector68]], n_vertices=d.n_vertices)

    def _kept(self, kind: str, size: int, make):
        if (kind, size) not in self._per_size:
            self._per_size[kind, size] = make()
        return self._per_size[kind, size]

    def texels(self, size: int) -> Texels:
        """The face tile's covered texels at size x size (rasterized on first use, then kept)."""
        def make():
            skin = torch.nonzero(self.skin).squeeze(1)
            frags = uv_raster(self.uvs, self.uv_faces[skin], size)
            index = torch.nonzero(frags.mask[0].reshape(-1)).squeeze(1)
            corners = self.triangles[skin[frags.face_id.reshape(-1)[index]]]  # [N, 3] vertex ids
            rows = torch.arange(0, 3 * len(index) + 1, 3, device=index.device)
            with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul is all we use
                warnings.simplefilter("ignore", UserWarning)
                interpolation = torch.sparse_csr_tensor(rows, corners.reshape(-1), frags.bary.reshape(-1, 3)[index]
                                                        .reshape(-1), (len(index), self.n_vertices))
            return Texels(size, index, interpolation)
        return self._kept("texels", size, make)

    def covered(self, size: int) -> torch.Tensor:
        """[size, size] bool: the texels inside the tile's triangles, kept."""
        return self._kept("covered", size, lambda: self.texels(size).scatter(
            torch.ones(len(self.texels(size).index), device=self.skin.device)).bool())

    def regions(self, size: int) -> TileRegions:
        """The eye, mouth and reliable-skin masks at size x size (skin.py), kept."""
        return self._kept("regions", size, lambda: TileRegions.build(self.landmark_uv, size, self.skin.device))

    def border_ramp(self, size: int) -> torch.Tensor:
        """[size, size] float32: 0 outside the tile's outer border, rising smoothly to 1 at BORDER_FADE inside it
        (holes of the tile, the eye and mouth openings, are inside), kept."""
        def make():
            covered = self.covered(size).cpu().numpy()
            inside = ndimage.distance_transform_edt(ndimage.binary_fill_holes(covered))
            t = np.clip(inside / (BORDER_FADE * size), 0, 1)
            return torch.from_numpy((t * t * (3 - 2 * t)).astype(np.float32)).to(self.skin.device)
        return self._kept("border", size, make)


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
    to_photo = box_map(box, size, scale=1.8)  # the window: its pixels -> photo pixels
    k, centre = crop_camera(photo.shape[:2], to_photo)
    principal = torch.tensor([centre], dtype=torch.float32, device=device)
    screen = project(cam_verts[None], focal / k, (size, size), principal)  # window pixels
    zoom = VISIBILITY_SIZE / size
    # (the nearest surface of the closed head faces the camera: back faces cannot hide a texel, so are not drawn)
    zbuf = rasterize(screen * screen.new_tensor([zoom, zoom, 1]), triangles, (VISIBILITY_SIZE,) * 2,
                     cull_backfaces=True).depth

    # per vertex, then interpolated once: window position and depth, the grazing cosine and the SH irradiance
    # (smooth at the scale of a triangle, so per vertex loses nothing visible)
    normals = vertex_normals(cam_verts[None], triangles)[0]
    cosine = (normals * F.normalize(-cam_verts, dim=-1)).sum(-1, keepdim=True)
    shading = irradiance(normals[None], sh[None].to(normals))[0]
    at_texels = texels.gather(torch.cat([screen[0], cosine, shading], 1))  # [N, 7]
    where, cosine, shading = at_texels[:, :3], at_texels[:, 3], at_texels[:, 4:].clamp(min=0.05)

    # visibility: the texel's depth against the z-buffer where it lands
    grid = (where[None, None, :, :2] / size * 2 - 1)  # [1, 1, N, 2]
    seen_depth = F.grid_sample(zbuf[:, None], grid, mode="nearest", padding_mode="border", align_corners=False)
    visible = where[:, 2] <= seen_depth[0, 0, 0] + DEPTH_TOLERANCE

    # the colour, sampled once from the photo (the part under the window, in linear RGB) where the photo shows it
    region, to_region = photo_region(photo, to_photo, (size, size))
    if not region.size:  # the window misses the photo: nothing seen
        nothing = where.new_zeros(len(where))
        return texels.scatter(nothing[:, None].expand(-1, 3)), texels.scatter(nothing), mesh.covered(size)
    m = torch.from_numpy(to_region).to(where)
    at = (where[:, :2] @ m[:, :2].T + m[:, 2]) * 2 + 1  # region pixels, then in grid_sample's -1..1
    at = at / at.new_tensor([region.shape[1], region.shape[0]]) - 1
    inside = (grid[0, 0].abs() <= 1).all(-1) & (at.abs() <= 1).all(-1)  # in the window, and in the photo
    weight = (visible & inside) * ((cosine - FADE[0]) / (FADE[1] - FADE[0])).clamp(0, 1)
    image = torch.from_numpy(LINEAR[region]).to(device).permute(2, 0, 1)[None]
    colour = F.grid_sample(image, at[None, None], mode="bilinear", padding_mode="border", align_corners=False)
    albedo = (colour[0, :, 0].T / shading).clamp(0, 1)
    return texels.scatter(albedo), texels.scatter(weight), mesh.covered(size)


@dataclass(frozen=True)
class Texture:
    """A baked face tile, all [size, size]: image [.., 3] uint8 sRGB albedo; seen float32, the photo's visibility
    weight (unwrap); skin float32, how much of each texel is skin (skin.skin_weight); source int8, where each
    texel's detail comes from (SOURCES)."""

    image: np.ndarray
    seen: np.ndarray
    skin: np.ndarray
    source: np.ndarray


SOURCES = ("photo", "mirror", "model")  # Texture.source: the photo at the texel, at its mirror image, the albedo model
BLEND_LEVELS = 5  # multiband_blend's bands below the finest at 1024 texels (coarsest about 2 cm), scaled with size
BORDER_FADE = 0.04  # of the tile's side: the band inside the tile's outer border that fades to the skin tone


def extract_texture(photo: np.ndarray, cam_verts: torch.Tensor, mesh: TileMesh, focal: float, sh: torch.Tensor,
                    box: tuple[float, float, float, float], size: int = 1024,
                    albedo_model: AlbedoModel | None = None) -> Texture:
    """The face tile baked from a photo (arguments as in `unwrap`): `unwrap`, then step 4. What is skin, the fill
    and every band but the finest are worked out at half the size; the photo's finest band is added at full size
    wherever the photo or its mirror image gives the texel's detail."""
    albedo, seen, covered = unwrap(photo, cam_verts, mesh, focal, sh, box, size)
    full = albedo.permute(2, 0, 1)  # [3, size, size]
    w = (seen * covered)[None]
    half = down(full * w) / down(w).clamp(min=1e-6)  # the seen texels' means
    seen_h, covered_h = down(seen), down(covered.to(w)) > 0.5
    regions = mesh.regions(half.shape[-1])
    skin = skin_weight(half.permute(1, 2, 0), seen_h, regions, albedo_model)
    own = seen_h * skin * covered_h
    photo_wins, mirror_wins = _winners(own)
    hard = torch.stack([photo_wins, mirror_wins, ~photo_wins & ~mirror_wins]).to(half)
    photo_layer = push_pull(half, own)
    fill = _model_fill(half, own, covered_h, albedo_model)
    levels = max(1, BLEND_LEVELS - 1 + round(np.log2(size / 1024)))
    coarse = multiband_blend(torch.stack([photo_layer, photo_layer.flip(2), fill]), hard, levels)
    coarse = push_pull(coarse, (~regions.openings).to(coarse))  # eyes and inner lips: the skin round them

    # the full-size shares from the half-size ones eroded by a texel, so that no thin rejected line (a glasses
    # frame, a strand of hair) comes back through the finest band
    own_full = up(-F.max_pool2d(-own[None], 3, 1, 1)[0], (size, size))
    photo_full, mirror_full = _winners(own_full)
    detail = full - up(photo_layer, (size, size))  # the finest band of the photo where it is seen
    out = up(coarse, (size, size)) + photo_full * detail + mirror_full * detail.flip(2)

    # the band along the border fades to what the rest of the head gets: FaceResult.colour, the median of the
    # texture's centre (skin_tone), which the band does not reach, so it is known before the fade
    srgb = linear_to_srgb(out.permute(1, 2, 0)) * 255
    rows, cols = skin_tone_window(size)
    tone = linear_to_srgb(srgb.new_tensor(median_tone(srgb[rows, cols].round().byte().cpu().numpy()))) * 255
    ramp = mesh.border_ramp(size)[..., None]
    srgb = torch.where(ramp < 1, tone + ramp * (srgb - tone), srgb)  # (an even fade in sRGB)
    source = torch.where(photo_full, 0, torch.where(mirror_full, 1, 2)).to(torch.int8)
    return Texture(srgb.round().byte().cpu().numpy(), seen.cpu().numpy(), up(skin, (size, size)).cpu().numpy(),
                   source.cpu().numpy())


def _winners(own: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which layer gives each texel its detail, [S, S] bool each: the photo, or else its mirror image (the other
    side's own share), whichever of own, (1 - own) * mirrored and (1 - own) * (1 - mirrored) is largest; neither:
    the albedo model."""
    mirrored = own.flip(1)
    photo = own >= (1 - own) * torch.maximum(mirrored, 1 - mirrored)
    return photo, ~photo & (mirrored >= 0.5)


def _model_fill(albedo: torch.Tensor, own: torch.Tensor, covered: torch.Tensor,
                albedo_model: AlbedoModel | None) -> torch.Tensor:
    """[3, S, S] linear: the albedo model fitted to the skin the photo shows on either side (without a model, the
    median of that skin). albedo: [3, S, S]; own: [S, S] the photo's share; covered: [S, S] bool."""
    mirrored = own.flip(1)
    both = own + (1 - own) * mirrored
    combined = (own * albedo + (1 - own) * mirrored * albedo.flip(2)) / both.clamp(min=1e-6)
    S = albedo.shape[-1]
    if albedo_model is not None:
        coeffs = albedo_model.fit(combined, both * covered)
        return up(albedo_model(coeffs[None])[0], (S, S)).clamp(0, 1)
    seen = both > 0.5
    tone = albedo[:, seen].median(1).values if seen.any() else albedo.new_tensor([0.55, 0.4, 0.33])
    return tone[:, None, None].expand(3, S, S)
