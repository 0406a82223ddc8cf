"""Test-time fitting of the face model to photos (analysis by synthesis, Adam in PyTorch).

Unknowns per photo: expression (53 weights, projected back into [0, 1] after every step), rotation, translation,
focal length (pixels, with a prior), SH light (27) and a constant skin albedo; identity (100) per photo, or one
for all photos of a person (`shared_identity`). Terms:
- landmarks: the model's 68 landmark vertices projected into the photo against the detected points, normalised
  by the face's size. The jaw contour (iBUG 0-16) weighs less, and on a face turned more than CONTOUR_YAW_DEG the
  contour of the far side is dropped: there the detector follows the silhouette, not fixed points of the face;
- photometric (optional): the shaded face skin against the photo on a square window around the face, rendered by
  backend.render at `window` pixels;
- priors: identity and expression towards zero, light towards ambient, focal towards its start.
The pose starts from a weak-perspective fit of the mean face's landmarks. A fit never ends worse on landmarks than
it started: if it would, the starting state is returned.

Camera (camera.py): principal point at the photo centre; landmarks come in photo pixels with 0-based centres
(landmarks.py), i.e. 0.5 less than camera pixel space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..detect.align import crop_from_box, landmark_box
from ..render.camera import crop_camera, focal_from_fov, project
from ..io.errors import MlafaceError
from ..model.face_model import FaceModel
from ..render.raster import interpolate, rasterize
from ..render.shading import ambient_sh, shade, vertex_normals
from .texture import srgb_to_linear

CONTOUR_YAW_DEG = 20.0
DEFAULT_FOV_DEG = 40.0  # across the longer side: a 50 mm lens on full frame, a sensible portrait guess


@dataclass(frozen=True)
class FitConfig:
    steps: int = 150
    rigid_steps: int = 40
    lr: float = 0.02
    w_landmark: float = 1.0
    w_contour: float = 0.5
    w_photo: float = 0.2
    w_identity: float = 2e-4
    w_expression: float = 1e-3
    w_expression_l1: float = 0.0  # sparsity: the fewest shapes that explain the points (weights are >= 0)
    w_light: float = 1e-3
    w_focal: float = 1e-2
    window: int = 128
    fov_deg: float = DEFAULT_FOV_DEG
    landmark_set: str = "ibug68"  # or "aflw21" (AFLW's 21 points; NaN marks a hidden point)


@dataclass(frozen=True)
class FitResult:
    """identity: [B, K] (rows equal when shared); expression: [B, E] in [0, 1]; rotation: [B, 3, 3];
    translation: [B, 3] metres; focal: [B] pixels; sh: [B, 27]; albedo: [B, 3] linear RGB;
    landmarks: [B, L, 2] fitted landmarks, photo pixels (0-based centres);
    error_start, error_end: [B] mean landmark error over the given points / sqrt(w * h) of their box"""

    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    focal: torch.Tensor
    sh: torch.Tensor
    albedo: torch.Tensor
    landmarks: torch.Tensor
    error_start: torch.Tensor
    error_end: torch.Tensor


def axis_angle_to_matrix(w: torch.Tensor) -> torch.Tensor:
    """[B, 3] axis * angle -> [B, 3, 3] (Rodrigues), smooth at zero."""
    theta = w.norm(dim=-1, keepdim=True).clamp(min=1e-8)[..., None]
    k = w / theta[..., 0]
    K = torch.zeros(w.shape[0], 3, 3, dtype=w.dtype, device=w.device)
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K = K - K.transpose(1, 2)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(K)
    return eye + torch.sin(theta) * K + (1 - torch.cos(theta)) * (K @ K)


def weak_perspective_pose(model_pts: np.ndarray, image_pts: np.ndarray, focal: float,
                          image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rotation [3, 3] and translation [3] (metres) from 3D model points [N, 3] and their photo pixels [N, 2]
    (0-based centres), assuming the face is small against its distance (scaled orthographic projection)."""
    H, W = image_size
    q = np.stack([image_pts[:, 0] + 0.5 - W / 2, -(image_pts[:, 1] + 0.5 - H / 2)], 1)  # camera axes, pixels
    P, qc = model_pts - model_pts.mean(0), q - q.mean(0)
    A = np.linalg.lstsq(P, qc, rcond=None)[0].T  # [2, 3]: q ~ A P
    r1 = A[0] / np.linalg.norm(A[0])
    r2 = A[1] - (A[1] @ r1) * r1
    r2 /= np.linalg.norm(r2)
    rot = np.stack([r1, r2, np.cross(r1, r2)])
    u, _, vt = np.linalg.svd(rot)
    rot = u @ vt
    scale = (np.linalg.norm(A[0]) + np.linalg.norm(A[1])) / 2  # pixels per metre = focal / depth
    depth = focal / scale
    centre = rot @ model_pts.mean(0)
    t_xy = q.mean(0) / scale - centre[:2]
    return rot, np.array([t_xy[0], t_xy[1], -depth - centre[2]])


def landmark_weights(rotation: torch.Tensor, w_contour: float, landmark_set: str = "ibug68") -> torch.Tensor:
    """[B, L] per-landmark weights: for iBUG-68 the contour lighter, the far side's contour off on turned faces;
    AFLW-21 has no contour (all 1)."""
    B = rotation.shape[0]
    if landmark_set == "aflw21":
        return torch.ones(B, 21, dtype=rotation.dtype, device=rotation.device)
    w = torch.ones(B, 68, dtype=rotation.dtype, device=rotation.device)
    w[:, :17] = w_contour
    turn = rotation[:, 0, 2]  # > 0: the face looks towards image right, its left cheek (iBUG 9-16) turns away
    s = math.sin(math.radians(CONTOUR_YAW_DEG))
    w[turn > s, 9:17] = 0
    w[turn < -s, 0:8] = 0
    return w


def fit(model: FaceModel, images: list[np.ndarray], landmarks: list[np.ndarray], cfg: FitConfig = FitConfig(),
        init_identity: torch.Tensor | None = None, init_expression: torch.Tensor | None = None,
        init_sh: torch.Tensor | None = None, shared_identity: bool = False, fixed_identity: bool = False,
        progress=None) -> FitResult:
    """Fit `model` to B photos. images: B x [H, W, 3] uint8; landmarks: B x [L, 2] photo pixels (0-based) of
    cfg.landmark_set (L = 68 or 21), NaN rows for points not seen (at least 4 per photo must be given).
    init_*: [B, ...] starting values (e.g. from the network), default the mean face, no expression, ambient light.
    fixed_identity: keep init_identity as it is (a person already known, e.g. from a clip's keyframes).
    With cfg.w_photo = 0 only the images' sizes are used (np.broadcast_to of a pixel will do).
    progress(step, steps) is called every 10 steps."""
    device, dtype = model.mean.device, torch.float32
    B = len(images)
    sizes = [im.shape[:2] for im in images]
    kind = cfg.landmark_set
    given = [np.isfinite(x).all(1) for x in landmarks]
    if any(g.sum() < 4 for g in given):
        raise MlafaceError("fitting needs at least 4 visible landmarks per photo")
    seen = torch.tensor(np.stack(given), dtype=dtype, device=device)  # [B, L]
    lm = torch.tensor(np.nan_to_num(np.stack(landmarks)), dtype=dtype, device=device)
    boxes = [landmark_box(x[g]) for x, g in zip(landmarks, given, strict=True)]
    norm = torch.tensor([math.sqrt((b[2] - b[0]) * (b[3] - b[1])) for b in boxes], dtype=dtype, device=device)
    focal0 = torch.tensor([focal_from_fov(s, cfg.fov_deg) for s in sizes], dtype=dtype, device=device)
    principal = torch.tensor([[s[1] / 2, s[0] / 2] for s in sizes], dtype=dtype, device=device)

    identity0 = init_identity if init_identity is not None else torch.zeros(B, model.n_identity)
    expression0 = init_expression if init_expression is not None else torch.zeros(B, model.n_expression)
    sh0 = init_sh if init_sh is not None else ambient_sh(0.8, B)
    identity0, expression0, sh0 = (t.to(device, dtype) for t in (identity0, expression0, sh0))
    with torch.no_grad():
        lm3d = model.landmarks(model.vertices(identity0, expression0), kind).cpu().numpy()
    poses = [weak_perspective_pose(lm3d[b][given[b]], landmarks[b][given[b]], float(focal0[b]), sizes[b])
             for b in range(B)]
    rot0 = torch.tensor(np.stack([p[0] for p in poses]), dtype=dtype, device=device)
    trans0 = torch.tensor(np.stack([p[1] for p in poses]), dtype=dtype, device=device)

    identity = (identity0.mean(0, keepdim=True) if shared_identity else identity0).clone()
    identity.requires_grad_(not fixed_identity)
    expression = expression0.clamp(0, 1).clone().requires_grad_()
    omega = torch.zeros(B, 3, dtype=dtype, device=device, requires_grad=True)
    trans = trans0.clone().requires_grad_()
    log_focal = torch.zeros(B, dtype=dtype, device=device, requires_grad=True)
    sh = sh0.clone().requires_grad_()
    albedo = torch.full((B, 3), 0.45, dtype=dtype, device=device, requires_grad=True)

    if cfg.w_photo > 0:
        windows = [crop_from_box(im, b, size=cfg.window, scale=1.6) for im, b in zip(images, boxes, strict=True)]
        target = srgb_to_linear(torch.tensor(np.stack([w.image for w in windows]), dtype=dtype, device=device) / 255)
        win_cams = [crop_camera(s, w.to_photo) for s, w in zip(sizes, windows, strict=True)]
        win_scale = torch.tensor([k for k, _ in win_cams], dtype=dtype, device=device)  # photo px / window px
        principal_win = torch.tensor([c for _, c in win_cams], dtype=dtype, device=device)
    skin_faces = model.face_triangles()

    def state():
        ident = identity.expand(B, -1) if shared_identity else identity
        rot = axis_angle_to_matrix(omega) @ rot0
        return ident, expression, rot, trans, focal0 * torch.exp(log_focal)

    def camera_points(ident, expr, rot, t):
        verts = model.vertices(ident, expr)
        return verts @ rot.transpose(1, 2) + t[:, None]

    def landmark_error(cam, focal, weights=None):
        pix = project(model.landmarks(cam, kind), focal, (1, 1), principal)[..., :2] - 0.5
        dist = (pix - lm).norm(dim=-1) / norm[:, None]
        weights = seen if weights is None else weights * seen
        return (dist * weights).sum(1) / weights.sum(1).clamp(min=1e-6), pix

    with torch.no_grad():
        ident, expr, rot, t, focal = state()
        error_start, _ = landmark_error(camera_points(ident, expr, rot, t), focal)
        start = (ident.clone(), expr.clone(), rot.clone(), t.clone(), focal.clone())

    rigid = [omega, trans, log_focal]
    optim = torch.optim.Adam([{"params": rigid, "lr": cfg.lr},
                              {"params": [p for p in (identity, expression, sh, albedo) if p.requires_grad],
                               "lr": cfg.lr}])
    for step in range(cfg.steps):
        ident, expr, rot, t, focal = state()
        cam = camera_points(ident, expr, rot, t)
        lm_err, _ = landmark_error(cam, focal, landmark_weights(rot.detach(), cfg.w_contour, kind))
        loss = cfg.w_landmark * lm_err.mean() * 10
        loss = loss + cfg.w_focal * log_focal.square().mean()
        if step >= cfg.rigid_steps:
            loss = loss + cfg.w_identity * identity.square().sum(1).mean()
            loss = loss + cfg.w_expression * expr.square().sum(1).mean() + cfg.w_expression_l1 * expr.sum(1).mean()
            loss = loss + cfg.w_light * (sh - ambient_sh(0.8, B).to(sh)).square().sum(1).mean()
            if cfg.w_photo > 0:
                screen = project(cam, focal / win_scale, (cfg.window, cfg.window), principal_win)
                frags = rasterize(screen, skin_faces, (cfg.window, cfg.window), cull_backfaces=True)
                normals = F.normalize(interpolate(vertex_normals(cam, skin_faces), frags, skin_faces), dim=-1)
                rendered = shade(albedo[:, None, None, :].expand(-1, cfg.window, cfg.window, -1), normals, sh)
                mask = frags.mask[..., None].to(dtype)
                photo_loss = ((rendered - target).abs() * mask).sum((1, 2, 3)) / (mask.sum((1, 2, 3)) * 3 + 1)
                loss = loss + cfg.w_photo * photo_loss.mean()
        optim.zero_grad()
        loss.backward()
        if step < cfg.rigid_steps:  # pose first: the shape only moves once the head is roughly in place
            for p in (identity, expression, sh, albedo):
                p.grad = None
        optim.step()
        with torch.no_grad():
            expression.clamp_(0, 1)
        if progress and step % 10 == 0:
            progress(step, cfg.steps)

    with torch.no_grad():
        ident, expr, rot, t, focal = state()
        error_end, pix = landmark_error(camera_points(ident, expr, rot, t), focal)
        worse = error_end > error_start
        if worse.any():  # keep the start where fitting did not help
            si, se, sr, st, sf = start
            if not shared_identity:
                ident = torch.where(worse[:, None], si, ident)
            expr = torch.where(worse[:, None], se, expr)
            rot = torch.where(worse[:, None, None], sr, rot)
            t = torch.where(worse[:, None], st, t)
            focal = torch.where(worse, sf, focal)
            error_end, pix = landmark_error(camera_points(ident, expr, rot, t), focal)
    return FitResult(identity=ident.detach(), expression=expr.detach(), rotation=rot.detach(),
                     translation=t.detach(), focal=focal.detach(), sh=sh.detach(), albedo=albedo.detach(),
                     landmarks=pix.detach(), error_start=error_start, error_end=error_end)
