"""Optional rasterizer backend: pytorch3d finds the visible triangle of each pixel; barycentrics, depth and their
gradients then come from render.py exactly as with our own rasterizer. Used by `rasterize(..., backend="pytorch3d")`
only; importing this module needs pytorch3d (not on any package registry; build it from source).

pytorch3d's NDC: +x left, +y up, the shorter image side spans [-1, 1]; our pixel coordinate u (x right, centres at
j + 0.5) maps to x_ndc = (W - 2u) / min(H, W), and v (y down) to y_ndc = (H - 2v) / min(H, W); depth is kept as z.
"""

from __future__ import annotations

import torch

from ..io.errors import MlafaceError


def pytorch3d_available() -> bool:
    try:
        import pytorch3d.renderer  # noqa: F401
    except ImportError:
        return False
    return True


@torch.no_grad()
def visible_faces_pytorch3d(verts: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int],
                            cull_backfaces: bool) -> torch.Tensor:
    """verts: [B, V, 3] (x_px, y_px, depth); faces: [F, 3] -> [B, H, W] int64 face ids, -1 where none."""
    try:
        from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError:
        raise MlafaceError("the pytorch3d renderer backend needs pytorch3d; use backend='torch'") from None
    H, W = image_size
    s = min(H, W)
    v = verts.float()
    ndc = torch.stack([(W - 2 * v[..., 0]) / s, (H - 2 * v[..., 1]) / s, v[..., 2]], dim=-1)
    # our rules for bad triangles (non-finite or non-positive depth corners): not drawn
    tri = ndc[:, faces]  # [B, F, 3, 3]
    drawable = torch.isfinite(tri).all(dim=(2, 3)) & (tri[..., 2] > 0).all(dim=2)
    kept = [torch.nonzero(d).squeeze(1) for d in drawable]
    meshes = Meshes(verts=list(torch.nan_to_num(ndc)), faces=[faces[k] for k in kept])
    pix_to_face, _, _, _ = rasterize_meshes(meshes, image_size=(H, W), faces_per_pixel=1, blur_radius=0.0,
                                            perspective_correct=True, cull_backfaces=cull_backfaces)
    packed = pix_to_face[..., 0]
    kept_all = torch.cat(kept)
    face_id = torch.where(packed >= 0, kept_all[packed.clamp(min=0)], -1)
    return face_id
