"""Differentiable mesh rendering in pure PyTorch: `rasterize`, `interpolate`, `texture` (after nvdiffrast's API).

Visibility is hard (a z-buffer, nearest triangle wins, ties to the lower triangle index); gradients reach vertex
positions through the barycentrics of covered pixels, and attributes and textures through interpolation and
sampling, as in nvdiffrast without antialiasing. Runs on CPU and CUDA, vectorised over (triangle, pixel) pairs:
every triangle is paired with the pixel centres of its bounding box, so triangles of any size are exact.

Conventions (camera.py): pixel space x right, y down, pixel centres at (j + 0.5, i + 0.5); depth in metres, > 0 in
front of the camera. Counter-clockwise triangles (seen from the camera, y up) face the camera. All tensors of one
call live on one device. Triangles touching a non-finite vertex or a vertex at depth <= 0 (behind or on the camera
plane; no clipping is done), degenerate triangles and triangles off screen are not drawn.

    frags = rasterize(project(verts_cam, focal, (H, W)), faces, (H, W))
    uv = interpolate(uvs, frags, uv_faces)                 # [B, H, W, 2]
    rgb = texture(albedo_map, uv)                          # [B, H, W, 3]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..io.errors import MlafaceError

__all__ = ["Fragments", "rasterize", "interpolate", "texture"]

_EMPTY = torch.iinfo(torch.int64).max


@dataclass(frozen=True)
class Fragments:
    """What each pixel sees.

    face_id: [B, H, W] int64, index into the rasterized `faces`, -1 where no triangle covers the pixel centre
    bary: [B, H, W, 3] float, perspective-correct barycentrics of the pixel centre in its triangle (weights of the
        triangle's corners 0, 1, 2); 0 where face_id is -1; differentiable with respect to the vertices
    depth: [B, H, W] float, metres, depth of the surface at the pixel centre; +inf where face_id is -1;
        differentiable with respect to the vertices
    """

    face_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """[B, H, W] bool: pixels covered by a triangle."""
        return self.face_id >= 0


def _check_mesh(verts: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int]) -> None:
    if verts.dim() != 3 or verts.shape[-1] != 3 or not verts.is_floating_point():
        raise MlafaceError(f"verts must be a float tensor [B, V, 3] (x_px, y_px, depth), got {tuple(verts.shape)}")
    if faces.dim() != 2 or faces.shape[-1] != 3 or faces.is_floating_point():
        raise MlafaceError(f"faces must be an integer tensor [F, 3], got {tuple(faces.shape)} {faces.dtype}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise MlafaceError(f"faces refer to vertices outside 0..{verts.shape[1] - 1}")
    if faces.device != verts.device:
        raise MlafaceError(f"verts on {verts.device} but faces on {faces.device}")
    H, W = image_size
    if H <= 0 or W <= 0:
        raise MlafaceError(f"image size must be positive, got {image_size}")


def _edge(ux, uy, vx, vy, px, py):
    """Twice the signed area of (u, v, p) in pixel space."""
    return (vx - ux) * (py - uy) - (vy - uy) * (px - ux)


@torch.no_grad()
def _visible_faces(verts: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int],
                   cull_backfaces: bool, max_pairs: int) -> torch.Tensor:
    """The z-buffer: [B, H, W] int64 nearest triangle per pixel centre, -1 where none."""
    H, W = image_size
    B, F_ = verts.shape[0], faces.shape[0]
    zbuf = torch.full((B * H * W,), _EMPTY, dtype=torch.int64, device=verts.device)
    if F_ == 0 or B == 0:
        return torch.full((B, H, W), -1, dtype=torch.int64, device=verts.device)
    tri = verts.float()[:, faces].reshape(B * F_, 3, 3)  # [N, corner, (x, y, depth)]
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    valid = torch.isfinite(tri).all(dim=(1, 2)) & (z > 0).all(dim=1)
    # pixel centres j + 0.5 inside [min x, max x]: j from ceil(min - 0.5) to floor(max - 0.5)
    x0 = torch.ceil(x.amin(1).clamp(-1, W + 1) - 0.5).clamp(min=0)
    x1 = torch.floor(x.amax(1).clamp(-1, W + 1) - 0.5).clamp(max=W - 1)
    y0 = torch.ceil(y.amin(1).clamp(-1, H + 1) - 0.5).clamp(min=0)
    y1 = torch.floor(y.amax(1).clamp(-1, H + 1) - 0.5).clamp(max=H - 1)
    # corners relative to the bounding box's first pixel centre keep float32 exact enough for small triangles
    lx, ly = x - (x0 + 0.5)[:, None], y - (y0 + 0.5)[:, None]
    area = _edge(lx[:, 0], ly[:, 0], lx[:, 1], ly[:, 1], lx[:, 2], ly[:, 2])
    valid &= area != 0
    if cull_backfaces:
        valid &= area < 0  # counter-clockwise with y up is clockwise with y down
    # the three edge functions and the inverse depth are affine in the local pixel offset (i, j):
    # value = a * j + b * i + c. Edge k is twice the signed area of (corner k+1, corner k+2, pixel centre), so
    # edge_k / area is corner k's barycentric weight; signs are flipped so that inside means all edges >= 0.
    edges = []
    for k in range(3):
        (ux, uy), (vx, vy) = (lx[:, (k + 1) % 3], ly[:, (k + 1) % 3]), (lx[:, (k + 2) % 3], ly[:, (k + 2) % 3])
        edges.append(torch.stack([uy - vy, vx - ux, ux * vy - uy * vx], 1))
    inv_depth = sum(e * (1 / z[:, k] / area)[:, None] for k, e in enumerate(edges))
    coef = torch.cat([e * torch.sign(area)[:, None] for e in edges] + [inv_depth], 1)  # [N, 12]
    nx, ny = (x1 - x0 + 1).long().clamp(min=0), (y1 - y0 + 1).long().clamp(min=0)
    count = torch.where(valid, nx * ny, 0)
    live = torch.nonzero(count).squeeze(1)  # triangle ids b * F + f with pixels to test
    count, nx, coef = count[live], nx[live], coef[live].T.contiguous()  # coef: [12, N'], a row per coefficient
    base = (live // F_ * H + y0[live].long()) * W + x0[live].long()  # pixel index of each box's first pixel
    packed_face = live % F_
    ends = torch.cumsum(count, 0)
    total = int(ends[-1]) if len(ends) else 0
    # chunks of whole triangles with about max_pairs (triangle, pixel) pairs each
    steps = torch.tensor([k * max_pairs for k in range(1, -(-total // max_pairs))], dtype=torch.int64,
                         device=ends.device)
    bounds = [0, *torch.searchsorted(ends, steps, right=True).tolist(), len(live)]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        if stop <= start:
            continue
        n = count[start:stop]
        pair = torch.repeat_interleave(torch.arange(start, stop, device=verts.device), n)
        offset = torch.arange(int(n.sum()), device=verts.device) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
        width = nx[pair]
        i = torch.div(offset, width, rounding_mode="floor")
        j = offset - i * width
        c = torch.index_select(coef, 1, pair)  # [12, P]: rows stream through the evaluations below
        fi, fj = i.float(), j.float()
        e0 = torch.addcmul(torch.addcmul(c[2], c[0], fj), c[1], fi)
        e1 = torch.addcmul(torch.addcmul(c[5], c[3], fj), c[4], fi)
        e2 = torch.addcmul(torch.addcmul(c[8], c[6], fj), c[7], fi)
        inv_depth = torch.addcmul(torch.addcmul(c[11], c[9], fj), c[10], fi)
        inside = torch.nonzero((e0 >= 0) & (e1 >= 0) & (e2 >= 0) & (inv_depth > 0)).squeeze(1)
        pair, i, j, inv_depth = pair[inside], i[inside], j[inside], inv_depth[inside]
        # positive float32 bit patterns sort like the numbers: (depth bits, face id) sorts by depth, then id
        key = ((1 / inv_depth).view(torch.int32).long() << 32) | packed_face[pair]
        zbuf.scatter_reduce_(0, base[pair] + i * W + j, key, reduce="amin")
    face_id = torch.where(zbuf == _EMPTY, -1, zbuf & 0xFFFFFFFF)
    return face_id.view(B, H, W)


def _barycentrics(verts: torch.Tensor, faces: torch.Tensor, face_id: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable perspective-correct barycentrics [B, H, W, 3] and depth [B, H, W] at the covered pixels."""
    B, H, W = face_id.shape
    flat = face_id.reshape(-1)
    covered = torch.nonzero(flat >= 0).squeeze(1)
    batch = covered // (H * W)
    row = covered % (H * W) // W
    col = covered % W
    tri = verts[batch[:, None], faces[flat[covered]]]  # [N, 3, 3]
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    # relative to corner 0, for float32 precision far from the image origin
    cx = col.to(verts.dtype) + 0.5 - x[:, 0]
    cy = row.to(verts.dtype) + 0.5 - y[:, 0]
    x, y = x - x[:, :1], y - y[:, :1]
    area = _edge(x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])
    w0 = _edge(x[:, 1], y[:, 1], x[:, 2], y[:, 2], cx, cy) / area
    w1 = _edge(x[:, 2], y[:, 2], x[:, 0], y[:, 0], cx, cy) / area
    w = torch.stack([w0, w1, 1 - w0 - w1], dim=1)
    q = w / z
    inv_depth = q.sum(1)
    bary = torch.zeros(B * H * W, 3, dtype=verts.dtype, device=verts.device)
    bary = bary.index_copy(0, covered, q / inv_depth[:, None])
    depth = torch.full((B * H * W,), float("inf"), dtype=verts.dtype, device=verts.device)
    depth = depth.index_copy(0, covered, 1 / inv_depth)
    return bary.view(B, H, W, 3), depth.view(B, H, W)


def rasterize(verts: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
              cull_backfaces: bool = False, backend: str = "torch", max_pairs: int = 1 << 18) -> Fragments:
    """Rasterize triangles with a z-buffer.

    verts: [B, V, 3] float (x_px, y_px, depth), pixel space (camera.project gives it); faces: [F, 3] int64 vertex
    ids, the same for the whole batch; image_size: (H, W).
    cull_backfaces: drop triangles that are clockwise as seen by the camera.
    backend: "torch" (ours) or "pytorch3d" (its rasterizer finds the visible triangles; needs pytorch3d).
    max_pairs: (triangle, pixel) pairs tested at once, about 100 bytes a pair: 2 ** 18 keeps a chunk's work in
        the CPU's cache (on the clip reader's renders 30% faster than 2 ** 24, the same fragments).
    """
    _check_mesh(verts, faces, image_size)
    faces = faces.long()
    if backend == "torch":
        face_id = _visible_faces(verts, faces, image_size, cull_backfaces, max_pairs)
    elif backend == "pytorch3d":
        from .raster_pytorch3d import visible_faces_pytorch3d

        face_id = visible_faces_pytorch3d(verts, faces, image_size, cull_backfaces)
    else:
        raise MlafaceError(f"unknown renderer backend {backend!r}; choose torch or pytorch3d")
    compute = verts if verts.dtype in (torch.float32, torch.float64) else verts.float()
    bary, depth = _barycentrics(compute, faces, face_id)
    return Fragments(face_id=face_id, bary=bary.to(verts.dtype), depth=depth.to(verts.dtype))


def interpolate(attributes: torch.Tensor, frags: Fragments, faces: torch.Tensor) -> torch.Tensor:
    """Interpolate attributes over the covered pixels.

    attributes: [V, C] or [B, V, C]; faces: [F, 3] ids into the attributes' V axis, triangle for triangle with the
    rasterized faces (e.g. the mesh's own triangles for per-vertex colours, or UV triangles into a UV list)
    -> [B, H, W, C], 0 where no triangle covers the pixel. Differentiable w.r.t. attributes and frags.bary.
    """
    ids = faces.long()[frags.face_id.clamp(min=0)]  # [B, H, W, 3]
    if attributes.dim() == 2:
        corner = attributes[ids]
    elif attributes.dim() == 3 and attributes.shape[0] == frags.face_id.shape[0]:
        batch = torch.arange(attributes.shape[0], device=ids.device).view(-1, 1, 1, 1)
        corner = attributes[batch, ids]
    else:
        raise MlafaceError(f"attributes must be [V, C] or [B, V, C] with B = {frags.face_id.shape[0]}, "
                           f"got {tuple(attributes.shape)}")
    return (frags.bary.to(corner.dtype)[..., None] * corner).sum(dim=-2)


def texture(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear texture lookup.

    tex: [C, Ht, Wt] or [B, C, Ht, Wt], row 0 at the top of the image; uv: [B, H, W, 2] in [0, 1] with v up
    (OBJ and Blender convention; the fractional part is used, so UDIM tiles wrap to their own 0..1)
    -> [B, H, W, C]. Clamped at the border; differentiable w.r.t. tex and uv.
    """
    B = uv.shape[0]
    if tex.dim() == 3:
        tex = tex.unsqueeze(0).expand(B, -1, -1, -1)
    if tex.dim() != 4 or tex.shape[0] != B:
        raise MlafaceError(f"tex must be [C, Ht, Wt] or [B, C, Ht, Wt] with B = {B}, got {tuple(tex.shape)}")
    u = uv[..., 0] - torch.floor(uv[..., 0])
    v = uv[..., 1] - torch.floor(uv[..., 1])
    grid = torch.stack([2 * u - 1, 1 - 2 * v], dim=-1).to(tex.dtype)
    out = F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.permute(0, 2, 3, 1)
