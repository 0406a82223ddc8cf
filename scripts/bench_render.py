"""Renderer benchmark: forward + backward milliseconds per batch (rasterize, interpolate vertex colours, SH shading,
a loss, backward to vertices and colours), ours against pytorch3d's rasterizer in the same process when it is
importable, with the face-id agreement of the two.

    python scripts/bench_render.py [--model FILE] [--batch 32] [--size 224] [--mesh face|head] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from backend.model.face_model import FaceModel
from backend.render.camera import focal_from_fov, project, to_camera
from backend.render.raster import interpolate, rasterize
from backend.render.raster_pytorch3d import pytorch3d_available
from backend.render.shading import ambient_sh, shade, vertex_normals


def scene(model: FaceModel, batch: int, size: int, device: str):
    g = torch.Generator().manual_seed(0)
    identity = torch.randn(batch, model.n_identity, generator=g)
    expression = torch.rand(batch, model.n_expression, generator=g) * 0.3
    verts = model.vertices(identity, expression)
    angle = (torch.rand(batch, generator=g) - 0.5) * 1.2  # yaw within +-35 degrees
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(batch, 3, 3)
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1, -s, c
    cam = to_camera(verts, rot, torch.tensor([0.0, 0.0, -0.55]).expand(batch, 3))
    screen = project(cam, focal_from_fov((size, size), 25.0), (size, size))
    colours = torch.rand(batch, model.n_vertices, 3, generator=g)
    return screen.to(device), cam.to(device), colours.to(device), model.triangles.to(device)


def timed(fn, device: str, repeats: int) -> float:
    for _ in range(2):
        fn()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--mesh", choices=["face", "head"], default="face")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = FaceModel.load(args.model)
    if args.mesh == "face":
        model = model.face_subset()
    screen, cam, colours, faces = scene(model, args.batch, args.size, args.device)
    size = (args.size, args.size)
    sh = ambient_sh(0.8, args.batch).to(args.device)

    def ours(backend: str = "torch"):
        v = screen.clone().requires_grad_()
        col = colours.clone().requires_grad_()
        frags = rasterize(v, faces, size, backend=backend)
        normals = interpolate(vertex_normals(cam, faces), frags, faces)
        img = shade(interpolate(col, frags, faces), normals, sh)
        img.square().mean().backward()
        return frags

    print(f"device {args.device}, {torch.get_num_threads()} threads; batch {args.batch}, {args.size}x{args.size}, "
          f"{args.mesh} mesh: {model.n_vertices} vertices, {len(faces)} triangles")
    ms = timed(ours, args.device, args.repeats)
    print(f"mlaface (pure PyTorch) forward+backward: {ms:8.1f} ms/batch")
    if not pytorch3d_available():
        print("pytorch3d: not importable, no comparison")
        return
    from pytorch3d.ops import interpolate_face_attributes
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    s = args.size

    def theirs():
        v = screen.clone().requires_grad_()
        col = colours.clone().requires_grad_()
        ndc = torch.stack([(s - 2 * v[..., 0]) / s, (s - 2 * v[..., 1]) / s, v[..., 2]], -1)
        meshes = Meshes(verts=list(ndc), faces=[faces] * args.batch)
        p2f, _, bary, _ = rasterize_meshes(meshes, image_size=size, faces_per_pixel=1, perspective_correct=True)
        normals = vertex_normals(cam, faces).reshape(-1, 3)[meshes.faces_packed()]
        img = shade(interpolate_face_attributes(p2f, bary, col.reshape(-1, 3)[meshes.faces_packed()])[..., 0, :],
                    interpolate_face_attributes(p2f, bary, normals)[..., 0, :], sh)
        img.square().mean().backward()
        return p2f

    ms3d = timed(theirs, args.device, args.repeats)
    print(f"pytorch3d rasterize_meshes forward+backward: {ms3d:8.1f} ms/batch")
    print(f"speed-up of ours over pytorch3d: {ms3d / ms:.2f}x")
    ours_ids = ours().face_id
    p3d_ids = ours("pytorch3d").face_id
    union = (ours_ids >= 0) | (p3d_ids >= 0)
    agree = ((ours_ids == p3d_ids) & union).sum() / union.sum()
    print(f"face-id agreement over covered pixels: {100 * float(agree):.3f}%")


if __name__ == "__main__":
    main()
