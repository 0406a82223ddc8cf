"""Parity of our rasterizer with pytorch3d's on the ICT face, and pytorch3d as a backend behind our API.
Skipped where pytorch3d is not importable (it is on no package registry)."""

from __future__ import annotations

import pytest
import torch

from backend.model.face_model import FaceModel
from backend.render.camera import focal_from_fov, project
from backend.render.raster import interpolate, rasterize
from backend.render.shading import ambient_sh, shade, vertex_normals

pytest.importorskip("pytorch3d.renderer", reason="pytorch3d is not installed (optional renderer backend)")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cull", [False, True])
def test_face_ids_and_shading_agree(real_model_data, device, cull):
    model = FaceModel.from_data(real_model_data).face_subset().to(device)
    g = torch.Generator().manual_seed(0)
    verts = model.vertices(torch.randn(4, 100, generator=g).to(device), 0.3 * torch.rand(4, 53, generator=g).to(device))
    cam = verts + torch.tensor([0.01, -0.02, -0.6], device=device)
    size = (200, 224)  # not square: checks the NDC mapping of both axes
    screen = project(cam, focal_from_fov(size, 25.0), size)
    ours = rasterize(screen, model.triangles, size, cull_backfaces=cull)
    theirs = rasterize(screen, model.triangles, size, cull_backfaces=cull, backend="pytorch3d")
    union = ours.mask | theirs.mask
    agree = ((ours.face_id == theirs.face_id) & union).sum() / union.sum()
    assert agree >= 0.995, f"face ids agree on {100 * float(agree):.2f}% of covered pixels"
    sh = ambient_sh(0.7, 4).to(device)
    sh[:, [2, 11, 20]] = 0.4
    normals = vertex_normals(cam, model.triangles)

    def image(frags):
        n = torch.nn.functional.normalize(interpolate(normals, frags, model.triangles), dim=-1)
        return shade(torch.full_like(n, 0.6), n, sh) * frags.mask[..., None]

    assert (image(ours) - image(theirs)).abs().mean() < 0.005
