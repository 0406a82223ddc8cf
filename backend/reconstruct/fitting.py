"""Test-time fitting of the face model to photos (a damped Gauss-Newton landmark fit, then one linear solve).

Unknowns per photo: expression (53 weights, kept in [0, 1]), rotation, translation, focal length (pixels, with a
prior); identity (100) per photo, or one for all photos of a person (`shared_identity`). Terms:
- landmarks: the model's 68 landmark vertices projected into the photo against the given points, normalised
  by the face's size. For a detector's points (`FitConfig.far_contour`), the jaw contour (iBUG 0-16) weighs less
  and on a face turned more than CONTOUR_YAW_DEG the contour of the far side is dropped: there the detector
  follows the silhouette, not fixed points of the face (detect/landmarks.py, far_contour; the blend drops those
  points too). Points that are projections of fixed 3D points (the network's, the blend's, the benchmark's) keep
  the whole contour (`FitConfig.for_3d_points`). Only the landmark vertices are computed
  (FaceModel.landmark_subset);
- priors: identity and expression towards zero, focal towards its start.
The solve (`_Problem`) is Levenberg-Marquardt on the mean point distance by iteratively reweighted least squares:
40 steps (FIT_STEPS) of about a millisecond where Adam needed 100 and more to come near (README, What users get;
40 rather than 20: the whole path on the dev images 0.07 better in every bin, 0.04 s more a photo). Faces are
independent problems with their own damping, so a batch of photos gives what each alone would.
Then, with `FitConfig.light`, the SH light and a constant skin albedo are solved in closed form from the photo
(`solve_light`: the fitted face skin rendered once by render/raster.py into a `window`-pixel square around the face,
a robust least-squares fit of the shaded colour); the shape does not move for it.
The fit starts from FaceParams (the network's, moved into the photo camera), or from `start_params`: the mean
face posed by a weak-perspective fit of its landmarks. A fit never ends worse on landmarks than it started: if it
would, the starting state is returned.

Camera (render/camera.py): principal point at the photo centre; landmarks come in photo pixels with 0-based
centres (detect/landmarks.py): render.camera.to_landmark_pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..detect.align import crop_from_box, landmark_box
from ..detect.landmarks import CONTOUR_YAW_DEG, FAR_CONTOUR
from ..io.colour import srgb_to_linear
from ..io.errors import MlafaceError
from ..model.face_model import LANDMARK_SETS, FaceModel
from ..model.params import FaceParams
from ..model.pose import axis_angle_to_matrix
from ..render.camera import crop_camera, focal_from_fov, project, to_camera, to_landmark_pixels
from ..render.raster import interpolate, rasterize
from ..render.shading import ambient_sh, sh_basis, vertex_normals
from .options import FIT_STEPS

DEFAULT_FOV_DEG = 40.0  # across the longer side: a 50 mm lens on full frame, a sensible portrait guess
AMBIENT = 0.8  # the light a fit starts from, and the strength solve_light gives the light (colour goes to albedo)
PROGRESS_EVERY = 10  # steps between progress calls
LIGHT_ROUNDS = 4  # reweighted least-squares rounds of solve_light (an L1 fit: hair and eyes are outliers)


@dataclass(frozen=True)
class FitConfig:
    steps: int = FIT_STEPS  # damped Gauss-Newton steps (_Problem.solve)
    rigid_steps: int = 3  # the first steps move the pose alone
    damping: float = 1e-3  # Marquardt's lambda at the first step (it shrinks after a kept step, grows after a miss)
    w_landmark: float = 1.0
    w_contour: float = 0.5
    w_identity: float = 2e-4  # towards the mean face; weaker: landmarks closer, shape worse (README, scans)
    w_expression: float = 1e-3
    w_expression_l1: float = 0.0  # sparsity: the fewest shapes that explain the points (weights are >= 0)
    w_light: float = 1.0  # solve_light's ridge on the directional bands (on their share of the shading)
    w_focal: float = 1e-2
    light: bool = True  # solve the SH light and skin albedo from the photo after the landmark fit
    window: int = 128
    fov_deg: float = DEFAULT_FOV_DEG
    # which model vertices the points are: a detector's ("detector68"), the projections of 3D points ("ibug68",
    # for_3d_points) or AFLW's 21 ("aflw21"; NaN marks a hidden point)
    landmark_set: str = "detector68"
    far_contour: bool = True  # drop the far side's jaw contour on turned faces (a detector's silhouette points)

    def __post_init__(self):
        if self.steps < 0 or self.rigid_steps < 0:
            raise MlafaceError(f"fitting steps must be 0 or more, got steps={self.steps}, "
                               f"rigid_steps={self.rigid_steps}")
        if not self.damping > 0:
            raise MlafaceError(f"fitting damping must be above 0, got {self.damping}")
        weights = {k: v for k, v in vars(self).items() if k.startswith("w_")}
        negative = [f"{k}={v}" for k, v in weights.items() if not v >= 0]
        if negative:
            raise MlafaceError(f"fitting weights must be 0 or more, got {', '.join(negative)}")
        if not 8 <= self.window <= 1024:
            raise MlafaceError(f"fitting window must be 8 to 1024 pixels, got {self.window}")
        if not 0 < self.fov_deg < 180:
            raise MlafaceError(f"field of view must be between 0 and 180 degrees, got {self.fov_deg}")
        if self.landmark_set not in LANDMARK_SETS:
            raise MlafaceError(f"unknown landmark set {self.landmark_set!r}; choose from {', '.join(LANDMARK_SETS)}")

    def for_3d_points(self) -> FitConfig:
        """This config for points that are projections of fixed 3D points (the network's and the blend's, the
        benchmark's): the whole contour at full weight, and the model's landmarks for them ("ibug68", not a
        detector's "detector68"). Fitted to AFLW2000-3D's own points (150 steps), the
        detector's rules leave 3.03 balanced NME, these 2.06 (README, the fitting floor)."""
        return replace(self, w_contour=1.0, far_contour=False,
                       landmark_set="ibug68" if self.landmark_set == "detector68" else self.landmark_set)


@dataclass(frozen=True)
class FitResult:
    """params: the fitted FaceParams in the photo cameras (identity rows equal when shared; texture as given);
    albedo: [B, 3] linear RGB, the constant skin colour solve_light found (0.45 without cfg.light);
    landmarks: [B, L, 2] fitted landmarks, photo pixels (0-based centres);
    error_start, error_end: [B] mean landmark error over the given points / sqrt(w * h) of their box"""

    params: FaceParams
    albedo: torch.Tensor
    landmarks: torch.Tensor
    error_start: torch.Tensor
    error_end: torch.Tensor


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


def landmark_weights(rotation: torch.Tensor, w_contour: float, landmark_set: str = "detector68",
                     far_contour: bool = True) -> torch.Tensor:
    """[B, L] per-landmark weights: for iBUG-68 the contour at w_contour, and with far_contour the far side's
    contour off on turned faces; AFLW-21 has no contour (all 1)."""
    B = rotation.shape[0]
    if landmark_set == "aflw21":
        return torch.ones(B, 21, dtype=rotation.dtype, device=rotation.device)
    w = torch.ones(B, 68, dtype=rotation.dtype, device=rotation.device)
    w[:, :17] = w_contour
    if not far_contour:
        return w
    turn = rotation[:, 0, 2]  # sin(yaw): detect/landmarks.py, far_contour
    s = math.sin(math.radians(CONTOUR_YAW_DEG))
    w[turn > s, FAR_CONTOUR[1]] = 0
    w[turn < -s, FAR_CONTOUR[-1]] = 0
    return w


def start_params(model: FaceModel, landmarks: list[np.ndarray], sizes: list[tuple[int, int]],
                 cfg: FitConfig = FitConfig(), identity: torch.Tensor | None = None,
                 expression: torch.Tensor | None = None, sh: torch.Tensor | None = None) -> FaceParams:
    """The fit's start without a network: the given identity [B, K], expression [B, E] and light [B, 27]
    (default the mean face, no expression, ambient light), posed by `weak_perspective_pose` on the given
    landmarks (B x [L, 2] photo pixels of cfg.landmark_set, NaN where not seen) in photos of `sizes` (H, W),
    focal from cfg.fov_deg."""
    device, dtype = model.mean.device, torch.float32
    B = len(landmarks)
    identity = torch.zeros(B, model.n_identity) if identity is None else identity
    expression = torch.zeros(B, model.n_expression) if expression is None else expression
    sh = ambient_sh(AMBIENT, B) if sh is None else sh
    identity, expression, sh = (t.to(device, dtype) for t in (identity, expression, sh))
    focal = [focal_from_fov(s, cfg.fov_deg) for s in sizes]
    with torch.no_grad():
        lm3d = model.landmarks(model.vertices(identity, expression), cfg.landmark_set).cpu().numpy()
    given = [np.isfinite(x).all(1) for x in landmarks]
    poses = [weak_perspective_pose(lm3d[b][given[b]], landmarks[b][given[b]], focal[b], sizes[b]) for b in range(B)]
    return FaceParams(identity=identity, expression=expression,
                      rotation=torch.tensor(np.stack([p[0] for p in poses]), dtype=dtype, device=device),
                      translation=torch.tensor(np.stack([p[1] for p in poses]), dtype=dtype, device=device),
                      focal=torch.tensor(focal, dtype=dtype, device=device), sh=sh)


def fit(model: FaceModel, images: list[np.ndarray], landmarks: list[np.ndarray], cfg: FitConfig = FitConfig(),
        init: FaceParams | None = None, shared_identity: bool = False, fixed_identity: bool = False,
        progress=None) -> FitResult:
    """Fit `model` to B photos. images: B x [H, W, 3] uint8; landmarks: B x [L, 2] photo pixels (0-based) of
    cfg.landmark_set (L = 68 or 21), NaN rows for points not seen (at least 4 per photo must be given).
    init: where to start, in the photos' cameras (principal points at their centres), default `start_params`;
    its focal is also the focal prior's centre. fixed_identity: keep init's identity as it is (a person already
    known, e.g. from a clip's keyframes). Without cfg.light only the images' sizes are used (np.broadcast_to of
    a pixel will do), and the light stays init's. progress(step, steps) is called every PROGRESS_EVERY steps."""
    device, dtype = model.mean.device, torch.float32
    B = len(images)
    sizes = [im.shape[:2] for im in images]
    given = [np.isfinite(x).all(1) for x in landmarks]
    if any(g.sum() < 4 for g in given):
        raise MlafaceError("fitting needs at least 4 visible landmarks per photo")
    init = start_params(model, landmarks, sizes, cfg) if init is None else init.map(lambda t: t.to(device, dtype))
    term = _LandmarkTerm(model, landmarks, given, sizes, cfg.landmark_set, device)
    problem = _Problem(term, init, cfg, shared_identity, fixed_identity)
    with torch.no_grad():
        start = problem.params(problem.theta)
        error_start, _ = term.error(start)
        end = problem.solve(progress)
        error_end, pix = term.error(end)
        worse = error_end > error_start
        if worse.any():  # keep the start where fitting did not help
            def keep(name: str) -> torch.Tensor:
                a, b = getattr(start, name), getattr(end, name)
                return torch.where(worse.view(-1, *([1] * (a.dim() - 1))), a, b)

            changed = ["expression", "rotation", "translation", "focal"] + ([] if shared_identity else ["identity"])
            end = replace(end, **{name: keep(name) for name in changed})
            error_end, pix = term.error(end)
        albedo = torch.full((B, 3), 0.45, dtype=dtype, device=device)
        if cfg.light:
            sh, albedo = solve_light(images, term.boxes, end.camera_vertices(model), end.focal,
                                     model.face_triangles(), cfg.window, cfg.w_light)
            end = replace(end, sh=sh)
    return FitResult(params=end, albedo=albedo, landmarks=pix, error_start=error_start, error_end=error_end)


class _Problem:
    """The fit's objective and its Levenberg-Marquardt solve. Per face b:

        E_b = 10 w_landmark err_b + w_focal log(f_b / f0_b)^2 + w_expression |e_b|^2 + w_expression_l1 sum(e_b)
              + w_identity |i_b|^2

    with err_b the weighted mean landmark distance / face size (_LandmarkTerm, landmark_weights). Faces are
    independent problems, each with its own damping, so a face fitted with others fits as alone; with a shared
    identity the B faces are one problem, mean_b E_b with the identity's prior counted once.

    Unknowns of face b, in this order: identity (K; absent when fixed; shared: once for all faces), expression
    (E, kept in [0, 1]), a rotation increment (3, axis-angle, applied on the left of the current rotation and
    reset every step), translation (3, metres), log focal ratio (1). The mean distance is minimised by
    iteratively reweighted least squares: each step weighs every point's squared residual by 1 / (2 d) at its
    current distance d, whose minimum is the distances' own; the Gauss-Newton system of the residuals' Jacobian
    (in closed form: `jacobian`) is damped by lam * diag (Marquardt), a step is kept only where it lowers E
    (else lam grows and the step is tried again), and expression is clipped into [0, 1]. The first
    cfg.rigid_steps steps move the pose alone."""

    TRIES = 4  # damped solves per step before a face keeps its state for this step

    def __init__(self, term: _LandmarkTerm, init: FaceParams, cfg: FitConfig, shared: bool, fixed: bool):
        self.term, self.init, self.cfg, self.shared, self.fixed = term, init, cfg, shared, fixed
        B, K, E = init.identity.shape[0], init.identity.shape[1], init.expression.shape[1]
        self.B, self.K, self.E = B, (0 if fixed else K), E
        self.Q = E + 7  # per-face unknowns besides identity
        per_face = [init.expression.clamp(0, 1), torch.zeros(B, 3, dtype=init.expression.dtype,
                                                            device=init.expression.device),
                    init.translation, torch.zeros(B, 1, dtype=init.expression.dtype, device=init.expression.device)]
        rest = torch.cat(per_face, 1)  # [B, Q]
        self.rotation = init.rotation.clone()
        if self.shared:  # one problem: [identity, face 0's rest, face 1's rest, ...]
            identity = init.identity.mean(0, keepdim=True)[:, :self.K]
            self.theta = torch.cat([identity, rest.reshape(1, -1)], 1)
        else:
            self.theta = torch.cat([init.identity[:, :self.K], rest], 1)  # [B, K + Q]
        self.groups = 1 if shared else B

    def faces(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                 torch.Tensor]:
        """The problems' unknowns [G, N] -> per face identity [B, K], expression [B, E], rotation increment
        [B, 3], translation [B, 3], log focal ratio [B]."""
        B, K = self.B, self.K
        if self.shared:
            identity = theta[:, :K].expand(B, -1)
            rest = theta[:, K:].reshape(B, self.Q)
        else:
            identity, rest = theta[:, :K], theta[:, K:]
        if self.fixed:
            identity = self.init.identity
        e, w, t, lf = rest.split([self.E, 3, 3, 1], dim=1)
        return identity, e, w, t, lf[:, 0]

    def params(self, theta: torch.Tensor) -> FaceParams:
        identity, e, w, t, lf = self.faces(theta)
        return replace(self.init, identity=identity, expression=e, rotation=axis_angle_to_matrix(w) @ self.rotation,
                       translation=t, focal=self.init.focal * torch.exp(lf))

    def offsets(self, theta: torch.Tensor) -> torch.Tensor:
        """[G, N] -> [B, L, 2] each model point's offset from its given point / face size."""
        return self.term.error(self.params(theta))[1].sub(self.term.points) / self.term.norm[:, None, None]

    def objective(self, theta: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor | None = None
                  ) -> torch.Tensor:
        """[G, N] unknowns, [B, L] point weights (and theta's offsets, when already known) -> [G] E (see the
        class)."""
        cfg = self.cfg
        identity, e, _, _, lf = self.faces(theta)
        d = (self.offsets(theta) if offsets is None else offsets).norm(dim=-1)
        err = (d * weights).sum(1) / weights.sum(1).clamp(min=1e-6)
        face = (10 * cfg.w_landmark * err + cfg.w_focal * lf.square() + cfg.w_expression * e.square().sum(1)
                + cfg.w_expression_l1 * e.sum(1))
        if self.shared:
            return (face.mean() + cfg.w_identity * theta[:, :self.K].square().sum(1)).reshape(1)
        return face + cfg.w_identity * identity.square().sum(1)

    def solve(self, progress=None) -> FaceParams:
        """cfg.steps damped Gauss-Newton steps from init -> the fitted FaceParams."""
        cfg, B, K, Q, E = self.cfg, self.B, self.K, self.Q, self.E
        n = 1 / B if self.shared else 1.0  # each face's share of its problem's objective
        prior, linear = torch.zeros_like(self.theta), torch.zeros_like(self.theta)  # per unknown
        prior[:, :K] = cfg.w_identity
        prior[:, K:].view(-1, Q)[:, :E] = n * cfg.w_expression
        prior[:, K:].view(-1, Q)[:, -1] = n * cfg.w_focal
        linear[:, K:].view(-1, Q)[:, :E] = n * cfg.w_expression_l1
        shape = torch.zeros(self.theta.shape[1], dtype=torch.bool, device=self.theta.device)
        shape[:K] = True
        shape[K:].view(-1, Q)[:, :E] = True
        lam = torch.full((self.groups,), cfg.damping, dtype=torch.float64, device=self.theta.device)
        for step in range(cfg.steps):
            if progress and step % PROGRESS_EVERY == 0:
                progress(step, cfg.steps)
            theta = self.theta  # its rotation increments are 0: the rotation is self.rotation
            weights = landmark_weights(self.rotation, cfg.w_contour, cfg.landmark_set, cfg.far_contour) * self.term.seen
            offsets = self.offsets(theta)
            before = self.objective(theta, weights, offsets)
            # IRLS: 10 w_landmark n sum(w d) / sum(w) ~ sum(c d^2) + const near the current d, c = that / (2 d)
            c = 10 * cfg.w_landmark * n * weights / weights.sum(1, keepdim=True).clamp(min=1e-6) \
                / (2 * offsets.norm(dim=-1).clamp(min=1e-3))
            H, g = self._normal_equations(c, offsets, prior, linear)
            if step < cfg.rigid_steps:  # pose first: the shape moves once the head is roughly in place
                H[:, shape, :] = 0
                H[:, :, shape] = 0
                H[:, shape, shape] = 1
                g[:, shape] = 0
            diag = torch.diagonal(H, dim1=1, dim2=2)
            done = torch.zeros(self.groups, dtype=torch.bool, device=lam.device)
            for _ in range(self.TRIES):
                delta = torch.linalg.solve(H + torch.diag_embed(lam[:, None] * diag + 1e-12), -g[..., None])[..., 0]
                trial = theta + delta.to(theta.dtype)
                trial[:, K:].view(-1, Q)[:, :E].clamp_(0, 1)
                better = ~done & (self.objective(trial, weights) < before)
                theta = torch.where(better[:, None], trial, theta)
                lam = torch.where(better, lam / 3, torch.where(done, lam, lam * 4))
                done |= better
                if done.all():
                    break
            _, _, w, _, _ = self.faces(theta)  # fold the rotation increment into the rotation
            self.rotation = axis_angle_to_matrix(w) @ self.rotation
            theta = theta.clone()
            theta[:, K:].view(-1, Q)[:, E:E + 3] = 0
            self.theta = theta
        return self.params(self.theta)

    def jacobian(self, theta: torch.Tensor) -> torch.Tensor:
        """d (each point's offset / face size) / d unknowns at theta, whose rotation increments are 0 (as at the
        start of every step): [B, L * 2, N_face] for each face's own unknowns, in the order of the class
        docstring (identity absent when fixed). Closed form: the model is linear in identity and expression,
        then rotation, translation and the pinhole projection (render/camera.project)."""
        term, p = self.term, self.params(theta)
        verts = term.model.vertices(p.identity, p.expression)
        marks = term.model.landmarks(verts, term.kind)  # [B, L, 3] model space
        rotated = marks @ p.rotation.transpose(1, 2)  # R X
        x, y, z = (rotated + p.translation[:, None]).unbind(-1)
        f, d = p.focal[:, None], -z
        zero = torch.zeros_like(x)
        # d pixel / d camera point [B, L, 2, 3]
        dpix = torch.stack([torch.stack([f / d, zero, f * x / d**2], -1),
                            torch.stack([zero, -f / d, -f * y / d**2], -1)], -2)
        index = getattr(term.model, f"landmarks_{term.kind}")
        V = term.model.n_vertices
        columns = []
        if self.K:
            basis = term.model.identity_basis.view(-1, V, 3)[:, index]  # [K, L, 3]
            columns.append(torch.einsum("bij,klj->blik", p.rotation, basis))
        basis = term.model.expression_basis.view(-1, V, 3)[:, index]  # [E, L, 3]
        columns.append(torch.einsum("bij,elj->blie", p.rotation, basis))
        q1, q2, q3 = rotated.unbind(-1)  # d (exp(w) R X) / d w at w = 0 is -[R X]x
        columns.append(torch.stack([torch.stack([zero, q3, -q2], -1), torch.stack([-q3, zero, q1], -1),
                                    torch.stack([q2, -q1, zero], -1)], -2))
        columns.append(torch.eye(3, dtype=x.dtype, device=x.device).expand(*x.shape, 3, 3))
        J = dpix @ torch.cat(columns, -1)  # [B, L, 2, N_face - 1]
        focal = torch.stack([f * x / d, -f * y / d], -1)[..., None]  # d pixel / d log focal
        J = torch.cat([J, focal], -1) / term.norm[:, None, None, None]
        return J.reshape(self.B, -1, J.shape[-1])

    def _normal_equations(self, c: torch.Tensor, offsets: torch.Tensor, prior: torch.Tensor, linear: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gauss-Newton system of sum(c d^2) + sum(prior theta^2) + sum(linear theta) about the current
        unknowns, whose offsets (each point's offset / face size, [B, L, 2]) are given: H [G, N, N] and g [G, N],
        half the Hessian's estimate and half the gradient, float64."""
        B, K, Q = self.B, self.K, self.Q
        w = c.repeat_interleave(2, dim=1).double()  # [B, L * 2]
        J = self.jacobian(self.theta).double()  # [B, R, K + Q]
        r = offsets.reshape(B, -1).double()
        Jw = J * w[..., None]
        if self.shared:  # one problem: the identity columns shared, each face's own block after them
            N = K + B * Q
            H = torch.zeros(1, N, N, dtype=torch.float64, device=J.device)
            g = torch.zeros(1, N, dtype=torch.float64, device=J.device)
            for b in range(B):
                cols = torch.cat([torch.arange(K), K + b * Q + torch.arange(Q)]).to(J.device)
                H[0, cols[:, None], cols[None, :]] += Jw[b].T @ J[b]
                g[0, cols] += Jw[b].T @ r[b]
        else:
            H = Jw.transpose(1, 2) @ J
            g = (Jw.transpose(1, 2) @ r[..., None])[..., 0]
        theta = self.theta.double()
        H = H + torch.diag_embed(prior.double())
        g = g + prior.double() * theta + linear.double() / 2
        return H, g


@torch.no_grad()
def solve_light(images: list[np.ndarray], boxes: list, cam: torch.Tensor, focal: torch.Tensor, skin: torch.Tensor,
                window: int, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The SH light and constant skin albedo that best explain the photos' face skin, the shape held fixed.

    images: B x [H, W, 3] uint8; boxes: B landmark boxes (photo pixels; the window is a square 1.6 times their
    size); cam: [B, V, 3] fitted camera vertices, metres; focal: [B] photo pixels; skin: [T, 3] the skin triangles;
    window: the square's side in pixels; ridge: the pull of the directional bands (1-8) towards 0, on each band's
    mean square over the pixels (1: a band may carry about as much of the shading as it explains; the ambient
    and the frontal (3z^2 - 1) bands are nearly alike on a frontal face, and only the ridge tells them apart).
    Per channel, colour = albedo * basis(normal) . sh is linear in q = albedo * sh: q by least squares over the
    covered pixels (linear RGB), reweighted LIGHT_ROUNDS times towards an L1 fit; then the light gets AMBIENT's
    strength (band 0) and the albedo the rest. -> sh [B, 27], albedo [B, 3] linear RGB; where the skin covers no
    pixel, ambient light and albedo 0.45."""
    B, device = len(images), cam.device
    crops = [crop_from_box(im, b, size=window, scale=1.6) for im, b in zip(images, boxes, strict=True)]
    target = srgb_to_linear(torch.tensor(np.stack([c.image for c in crops]), device=device).float() / 255)
    cams = [crop_camera(im.shape[:2], c.to_photo) for im, c in zip(images, crops, strict=True)]
    scale = torch.tensor([k for k, _ in cams], device=device)
    principal = torch.tensor([c for _, c in cams], device=device)
    cam = cam.float()
    frags = rasterize(project(cam, focal / scale, (window, window), principal), skin, (window, window),
                      cull_backfaces=True)
    normals = F.normalize(interpolate(vertex_normals(cam, skin), frags, skin), dim=-1)
    basis = sh_basis(normals)  # [B, w, w, 9]
    band0 = float(ambient_sh(AMBIENT)[0, 0])
    sh = ambient_sh(AMBIENT, B).to(device).view(B, 3, 9)
    albedo = torch.full((B, 3), 0.45, device=device)
    prior = torch.full((9,), ridge, device=device)
    prior[0] = 0
    for b in range(B):
        A, y = basis[b][frags.mask[b]], target[b][frags.mask[b]]  # [N, 9], [N, 3]
        if len(A) < 9:
            continue
        w = torch.ones(len(A), 3, device=device)
        reg = torch.diag(prior * A.square().mean(0))  # on each band's share of the shading, not its coefficient
        for _ in range(LIGHT_ROUNDS):
            q = torch.stack([torch.linalg.solve((A * w[:, c:c + 1]).T @ A / len(A) + reg,
                                                (A * w[:, c:c + 1]).T @ y[:, c] / len(A)) for c in range(3)])  # [3, 9]
            w = 1 / (y - A @ q.T).abs().clamp(min=0.01)
            w = w / w.mean(0)  # the ridge keeps its weight against the data
        albedo[b] = (q[:, 0] / band0).clamp(0.02, 1)
        sh[b] = q / albedo[b][:, None]
    return sh.reshape(B, 27), albedo


class _LandmarkTerm:
    """The landmark error of FaceParams against the given points of B photos: mean distance over the given points
    (optionally weighted) / sqrt(w * h) of their box."""

    def __init__(self, model: FaceModel, landmarks: list[np.ndarray], given: list[np.ndarray],
                 sizes: list[tuple[int, int]], kind: str, device: torch.device):
        self.model, self.kind = model.landmark_subset(), kind
        self.seen = torch.tensor(np.stack(given), dtype=torch.float32, device=device)  # [B, L]
        self.points = torch.tensor(np.nan_to_num(np.stack(landmarks)), dtype=torch.float32, device=device)
        self.boxes = [landmark_box(x[g]) for x, g in zip(landmarks, given, strict=True)]
        self.norm = torch.tensor([math.sqrt((b[2] - b[0]) * (b[3] - b[1])) for b in self.boxes], device=device)
        self.principal = torch.tensor([[w / 2, h / 2] for h, w in sizes], device=device)

    def error(self, p: FaceParams, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ([B] error, [B, L, 2] the model's landmarks in photo pixels)."""
        marks = to_camera(self.model.landmarks(self.model.vertices(p.identity, p.expression), self.kind),
                          p.rotation, p.translation)
        pix = to_landmark_pixels(marks, p.focal, (1, 1), self.principal)
        dist = (pix - self.points).norm(dim=-1) / self.norm[:, None]
        weights = self.seen if weights is None else weights * self.seen
        return (dist * weights).sum(1) / weights.sum(1).clamp(min=1e-6), pix
