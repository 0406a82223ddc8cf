"""The pure-PyTorch renderer: hand-computed pixels, a slow reference rasterizer, gradients, shading, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from backend.io.errors import MlafaceError
from backend.render.camera import focal_from_fov, fov_from_focal, project, unproject
from backend.render.raster import interpolate, rasterize, texture
from backend.render.shading import ambient_sh, irradiance, sh_basis, shade, vertex_normals

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def reference_rasterize(verts: np.ndarray, faces: np.ndarray, H: int, W: int) -> np.ndarray:
    """Slow, obviously correct oracle: every pixel centre against every triangle, float64,
    nearest perspective-correct depth wins, ties to the lower index. verts: [V, 3] -> face ids [H, W]."""
    out = np.full((H, W), -1)
    best = np.full((H, W), np.inf)
    for f, (a, b, c) in enumerate(faces):
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = verts[a], verts[b], verts[c]
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if area == 0 or min(az, bz, cz) <= 0 or not np.isfinite(verts[[a, b, c]]).all():
            continue
        for i, j in itertools.product(range(H), range(W)):
            px, py = j + 0.5, i + 0.5
            w0 = ((cx - bx) * (py - by) - (cy - by) * (px - bx)) / area
            w1 = ((ax - cx) * (py - cy) - (ay - cy) * (px - cx)) / area
            w2 = 1 - w0 - w1
            if min(w0, w1, w2) < 0:
                continue
            depth = 1 / (w0 / az + w1 / bz + w2 / cz)
            if depth < best[i, j]:
                best[i, j], out[i, j] = depth, f
    return out


def test_single_triangle_hand_computed():
    # right triangle with legs of 6 px from (1, 1); pixel centre (j + .5, i + .5) is inside iff i, j >= 1, i + j <= 7
    verts = torch.tensor([[[1.0, 1.0, 2.0], [7.0, 1.0, 2.0], [1.0, 7.0, 2.0]]])
    faces = torch.tensor([[0, 2, 1]])  # counter-clockwise with y up: faces the camera
    frags = rasterize(verts, faces, (8, 8))
    i, j = np.mgrid[:8, :8]
    expected = (i >= 1) & (j >= 1) & (i + j <= 7)
    np.testing.assert_array_equal(frags.mask[0].numpy(), expected)
    assert expected.sum() == 21
    # pixel (1, 1), centre (1.5, 1.5): weights of corners (0, 2, 1) are (10/12, 1/12, 1/12)
    torch.testing.assert_close(frags.bary[0, 1, 1], torch.tensor([10 / 12, 1 / 12, 1 / 12]))
    assert frags.depth[0, 1, 1] == 2.0 and torch.isinf(frags.depth[0, 0, 0])
    assert (frags.face_id[0][~torch.from_numpy(expected)] == -1).all()
    # culling: the same triangle wound the other way faces away
    assert not rasterize(verts, torch.tensor([[0, 1, 2]]), (8, 8), cull_backfaces=True).mask.any()
    assert rasterize(verts, faces, (8, 8), cull_backfaces=True).mask.sum() == 21


def cube(device="cpu"):
    """A 2 m cube centred 10 m in front of the camera: [1, 8, 3] camera space, [12, 3] outward-facing faces."""
    corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)), device=device)
    verts = corners + torch.tensor([0.0, 0.0, -10.0], device=device)
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    faces = torch.tensor([[q[0], q[1], q[2]] for q in quads] + [[q[0], q[2], q[3]] for q in quads], device=device)
    return verts[None], faces


@pytest.mark.parametrize("device", DEVICES)
def test_cube_hand_computed(device):
    """Front face at depth 9, half-width 1 m, focal 100 px: x_px = 32 +- 100/9 = 20.89..43.11, so pixel columns
    (and rows) 21..42 are covered; the back and sides hide behind it."""
    verts, faces = cube(device)
    frags = rasterize(project(verts, 100.0, (64, 64)), faces, (64, 64), cull_backfaces=False)
    expected = np.zeros((64, 64), bool)
    expected[21:43, 21:43] = True
    np.testing.assert_array_equal(frags.mask[0].cpu().numpy(), expected)
    front = {5, 11}  # the z = -9 quad [1, 5, 7, 3] (quads[5]) split in triangles 5 and 11
    assert set(frags.face_id[0][frags.mask[0]].unique().tolist()) == front
    torch.testing.assert_close(frags.depth[0][frags.mask[0]], torch.full((22 * 22,), 9.0, device=device))
    culled = rasterize(project(verts, 100.0, (64, 64)), faces, (64, 64), cull_backfaces=True)
    assert torch.equal(culled.face_id, frags.face_id)  # outward-facing triangles: culling hides nothing seen


@pytest.mark.parametrize("device", DEVICES)
def test_matches_reference_rasterizer(device):
    g = torch.Generator().manual_seed(3)
    H, W, V = 24, 32, 60
    xy = torch.rand(2, V, 2, generator=g) * torch.tensor([W * 1.6, H * 1.6]) - torch.tensor([W * 0.3, H * 0.3])
    verts = torch.cat([xy, 1 + 5 * torch.rand(2, V, 1, generator=g)], -1)
    verts[1, 5] = float("nan")  # triangles touching it are skipped
    verts[1, 7, 2] = -1.0  # behind the camera: skipped
    faces = torch.randint(0, V, (40, 3), generator=g)
    faces[0] = torch.tensor([0, 1, 1])  # degenerate
    frags = rasterize(verts.to(device), faces.to(device), (H, W))
    for b in range(2):
        ref = reference_rasterize(verts[b].double().numpy(), faces.numpy(), H, W)
        got = frags.face_id[b].cpu().numpy()
        assert (got != ref).sum() <= 2, f"{(got != ref).sum()} pixels differ from the reference"
    assert frags.mask.any()


def test_chunking_gives_the_same_result():
    g = torch.Generator().manual_seed(4)
    verts = torch.cat([torch.rand(1, 50, 2, generator=g) * 64, 1 + torch.rand(1, 50, 1, generator=g)], -1)
    faces = torch.randint(0, 50, (80, 3), generator=g)
    a = rasterize(verts, faces, (64, 64))
    b = rasterize(verts, faces, (64, 64), max_pairs=97)
    assert torch.equal(a.face_id, b.face_id) and torch.equal(a.bary, b.bary)


def test_huge_and_offscreen_triangles():
    verts = torch.tensor([[[-1e4, -1e4, 1.0], [1e4, -1e4, 1.0], [0.0, 1e4, 1.0],
                           [500, 500, 1.0], [600, 500, 1.0], [500, 600, 1.0]]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    frags = rasterize(verts, faces, (16, 16))
    assert (frags.face_id == 0).all()  # the screen-filling triangle everywhere, the off-screen one nowhere


def test_perspective_correct_depth():
    """A plane tilted away from the camera: the depth at each pixel is where that pixel's ray meets the plane."""
    quad = torch.tensor([[[-1.0, -1.0, -2.0], [1.0, -1.0, -4.0], [1.0, 1.0, -4.0], [-1.0, 1.0, -2.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    size, focal = (32, 32), 20.0
    frags = rasterize(project(quad, focal, size), faces, size)
    i, j = torch.nonzero(frags.mask[0], as_tuple=True)
    pix = torch.stack([j + 0.5, i + 0.5], -1).float()[None]
    ray = unproject(pix, torch.ones(1, len(i)), focal, size)[0]  # points at depth 1
    # plane z = -3 - x: the ray t * ray hits it at t = -3 / (ray_z + ray_x)
    t = -3 / (ray[:, 2] + ray[:, 0])
    torch.testing.assert_close(frags.depth[0, i, j], t, rtol=1e-5, atol=1e-5)
    # interpolating camera-space z gives the same depth (perspective-correct barycentrics)
    z = interpolate(quad[0, :, 2:], frags, faces)[0, i, j, 0]
    torch.testing.assert_close(-z, t, rtol=1e-5, atol=1e-5)


def test_gradients_match_finite_differences():
    verts = torch.tensor([[[1.3, 1.2, 2.0], [6.7, 1.6, 2.5], [1.9, 6.4, 3.0], [6.2, 6.1, 2.2]]],
                         dtype=torch.float64, requires_grad=True)
    colours = torch.rand(4, 2, dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 2, 1], [1, 2, 3]])

    def image(v, c):
        frags = rasterize(v, faces, (8, 8))
        return interpolate(c, frags, faces), frags.depth.nan_to_num(posinf=0.0)

    assert torch.autograd.gradcheck(image, (verts, colours), eps=1e-6, atol=1e-5)
    tex = torch.rand(2, 5, 6, dtype=torch.float64, requires_grad=True)
    uv = (0.1 + 0.8 * torch.rand(1, 3, 3, 2, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(texture, (tex, uv), eps=1e-6, atol=1e-5)


def test_texture_orientation():
    tex = torch.zeros(1, 2, 2)
    tex[0, 0, 0] = 1.0  # top-left texel: u small, v large (v up)
    uv = torch.tensor([[[[0.25, 0.75], [0.75, 0.75]], [[0.25, 0.25], [0.75, 0.25]]]])
    out = texture(tex, uv)[0, ..., 0]
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    torch.testing.assert_close(texture(tex, uv + 3.0), texture(tex, uv))  # UDIM tile 1004 reads its own 0..1


def test_bad_input():
    verts = torch.tensor([[[1.0, 1.0, 2.0], [7.0, 1.0, 2.0], [1.0, 7.0, 2.0]]])
    empty = rasterize(verts, torch.zeros(0, 3, dtype=torch.long), (4, 4))
    assert not empty.mask.any() and torch.isinf(empty.depth).all() and (empty.bary == 0).all()
    nan = verts.clone()
    nan[0, 0, 0] = float("nan")
    assert not rasterize(nan, torch.tensor([[0, 2, 1]]), (8, 8)).mask.any()
    with pytest.raises(MlafaceError, match="outside 0..2"):
        rasterize(verts, torch.tensor([[0, 1, 3]]), (8, 8))
    with pytest.raises(MlafaceError, match=r"verts must be a float tensor \[B, V, 3\]"):
        rasterize(verts[0], torch.tensor([[0, 1, 2]]), (8, 8))
    with pytest.raises(MlafaceError, match="faces must be an integer tensor"):
        rasterize(verts, torch.tensor([[0.0, 1.0, 2.0]]), (8, 8))
    with pytest.raises(MlafaceError, match="image size must be positive"):
        rasterize(verts, torch.tensor([[0, 1, 2]]), (0, 8))
    with pytest.raises(MlafaceError, match="unknown renderer backend"):
        rasterize(verts, torch.tensor([[0, 1, 2]]), (8, 8), backend="opengl")


def test_camera_focal_and_round_trip():
    f = focal_from_fov((480, 640), 60.0)
    assert f == pytest.approx(320 / np.tan(np.radians(30)))
    assert fov_from_focal((480, 640), f) == pytest.approx(60.0)
    with pytest.raises(MlafaceError, match="field of view"):
        focal_from_fov((480, 640), 0.0)
    pts = torch.tensor([[[0.1, -0.2, -2.0], [0.0, 0.0, -1.0]]])
    px = project(pts, f, (480, 640))
    assert px[0, 1, :2].tolist() == [320.0, 240.0]  # on the axis: the image centre
    assert px[0, 0, 0] > 320 and px[0, 0, 1] > 240  # right and below (y down in pixels)
    torch.testing.assert_close(unproject(px[..., :2], px[..., 2], f, (480, 640)), pts)


def test_sh_shading():
    n = torch.nn.functional.normalize(torch.randn(2, 100, 3), dim=-1)
    torch.testing.assert_close(irradiance(n, ambient_sh(0.7, 2)), torch.full((2, 100, 3), 0.7))
    sh = torch.zeros(1, 27)
    sh[0, [2, 11, 20]] = 1.0  # light from +z (towards the viewer), all channels
    lit = irradiance(torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]]), sh)
    assert (lit[0, 0] > 0).all() and (lit[0, 1] < 0).all()
    albedo = torch.full((1, 2, 3), 0.5)
    torch.testing.assert_close(shade(albedo, n[:1, :2], ambient_sh(1.0)), albedo)
    assert sh_basis(n).shape == (2, 100, 9)
    with pytest.raises(MlafaceError, match=r"sh must be \[B, 27\]"):
        irradiance(n, torch.zeros(2, 9))


def test_vertex_normals_of_cube_point_outwards():
    verts, faces = cube()
    normals = vertex_normals(verts, faces)[0]
    centre = verts[0].mean(0)
    assert ((normals * (verts[0] - centre)).sum(-1) > 0).all()
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(8))


def test_real_head_render(real_model_data):
    """The ICT face region rendered frontally at 224 x 224: it fills a plausible part of the picture, is
    left-right symmetric, and the nose tip is where the depth buffer says."""
    from backend.model.face_model import FaceModel

    model = FaceModel.from_data(real_model_data).face_subset()
    verts = model.vertices(torch.zeros(1, 100), torch.zeros(1, 53))
    cam = verts + torch.tensor([0.0, 0.0, -0.6])
    size = (224, 224)
    screen = project(cam, focal_from_fov(size, 25.0), size)
    frags = rasterize(screen, model.triangles, size)
    mask = frags.mask[0]
    assert 0.2 < mask.float().mean() < 0.7
    assert (mask == mask.flip(1)).float().mean() > 0.98
    lm = screen[0, model.landmarks_ibug68]
    i, j = int(lm[30, 1]), int(lm[30, 0])
    assert mask[i, j] and frags.depth[0, i, j] == pytest.approx(float(lm[30, 2]), abs=2e-3)


def test_crop_camera_sees_what_the_photo_camera_sees():
    """A point projected by the photo camera, mapped into a crop, equals its projection by the crop camera."""
    from backend.detect.align import crop_from_box
    from backend.render.camera import crop_camera

    photo = np.zeros((480, 640, 3), np.uint8)
    crop = crop_from_box(photo, (300.0, 100.0, 420.0, 260.0), size=128, scale=1.7)
    pts = torch.tensor([[[0.05, 0.02, -1.2], [-0.03, -0.04, -1.0]]])
    in_photo = project(pts, 900.0, (480, 640))[0, :, :2].numpy() - 0.5  # to 0-based pixel centres
    k, centre = crop_camera((480, 640), crop.to_photo)
    in_crop = project(pts, 900.0 / k, (128, 128), torch.tensor([centre]))[0, :, :2].numpy() - 0.5
    np.testing.assert_allclose(crop.points_to_crop(in_photo.astype(np.float64)), in_crop, atol=1e-3)
