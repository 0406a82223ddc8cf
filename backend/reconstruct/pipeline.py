"""Photo to FaceResult: detect + landmarks -> aligned crop -> network (when trained weights exist) -> test-time
fitting -> texture -> FaceResult.

    rec = Reconstructor(ReconstructOptions(fit_steps=150))
    results = rec.reconstruct("einstein.jpg")                  # the largest face (all with all_faces=True)
    results = rec.reconstruct_same_person(["a.jpg", "b.jpg"])  # one identity, one expression and pose per photo
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..detect.align import IBUG68_FLIP, box_from_detection, crop_from_box, landmark_box
from ..detect.landmarks import Face, detect_faces, get_provider
from ..io.errors import MlafaceError
from ..io.face_result import FaceResult
from ..io.images import load_image
from ..io.model_file import read_model
from ..model.albedo_model import SHIPPED as SHIPPED_ALBEDO
from ..model.albedo_model import AlbedoModel
from ..model.face_model import FaceModel
from ..model.params import FaceParams
from ..model.store import find_network_weights, resolve_model_path
from ..network.checkpoint import load_network
from ..network.mlanet import MLANet
from ..render.camera import focal_from_fov, to_camera, to_landmark_pixels
from .blend import Blend, blend_landmarks
from .fitting import FitConfig, FitResult, fit
from .options import ReconstructOptions
from .texture import TileMesh, extract_texture

QUALITY_SCALE = 0.05  # fit_quality's score falls to 1/e at a 5% gap or residual (of the face size)
# The crop from the detector's box, then three times from the network's own points of the pass before: the
# framing it was trained on, which a profile's detector box is far from (every 2nd dev image, the whole path:
# 2 passes 5.429 balanced, 60-90 degrees 7.262; 3 passes 5.255, 6.764; 4 passes 5.146, 6.531; 6 passes 5.239)
NETWORK_PASSES = 4
# The last pass reads each face from 5 crops, the centred one and its box moved left, right, up and down by
# LAST_PASS_SHIFT of the crop's side (training's framing jitter reaches 0.05), each read mirror-averaged, and
# averages the points in the photo. All 500 dev images, the whole path with stage 10: fitted points 4.921 -> 4.860
# balanced, the network's points 4.831 -> 4.727 (moved by 0.028 of the crop instead: 4.861; the centred box also
# scaled by 0.93 and 1.07: 4.861; scaled alone: 4.876), for 8 more readings a face
LAST_PASS_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
LAST_PASS_SHIFT = 0.04


@dataclass(frozen=True)
class NetworkStart:
    """The network's prediction for B faces: params in the photo cameras; landmarks [B, 68, 2] photo pixels (its
    points head's, else its face's landmark vertices projected); sigma [B, 68] their expected error in photo
    pixels, or None where the network has no confidence head."""

    params: FaceParams
    landmarks: np.ndarray
    sigma: np.ndarray | None


def mirror_averaged(net: MLANet, x: torch.Tensor, points: torch.Tensor, sigma: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Test-time augmentation of the points head: its points [B, 68, 2] (crop pixels) for crops x [B, 3, S, S]
    averaged with those read from the mirrored crops, mirrored back and renumbered (IBUG68_FLIP); their expected
    errors [B, 68] (or None) averaged the same way. On the benchmark's crops the average is 6% better than either
    reading (README, Network)."""
    _, back, back_sigma = net.predict(x.flip(-1))
    back = back[:, IBUG68_FLIP]
    back[..., 0] = x.shape[-1] - 1 - back[..., 0]
    return (points + back) / 2, None if sigma is None else (sigma + back_sigma[:, IBUG68_FLIP]) / 2


def shifted_box(box: tuple[float, float, float, float], dx: float, dy: float) -> tuple[float, float, float, float]:
    """The square of `crop_from_box`'s crop about box (x0, y0, x1, y1) moved by (dx, dy) * LAST_PASS_SHIFT of the
    crop's side (sqrt(2) * the box's larger side), as a box of the same size."""
    x0, y0, x1, y1 = box
    step = LAST_PASS_SHIFT * math.sqrt(2) * max(x1 - x0, y1 - y0)
    return x0 + dx * step, y0 + dy * step, x1 + dx * step, y1 + dy * step


def detector_to_3d(model: FaceModel, params: FaceParams, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """B x [68, 2] photo pixels: where the model's "ibug68" vertices project less where its "detector68" ones do,
    for the heads `params` (photo cameras) in photos of `sizes` (H, W): added to a detector's points, it moves them
    into the convention of 3D points, which the network's follow and the blend's are fitted in (README, Landmark
    vertices; the whole path on the dev images 4.534 -> 4.506 balanced)."""
    sub = model.landmark_subset()
    with torch.no_grad():
        verts = params.camera_vertices(sub)
    out = []
    for b, size in enumerate(sizes):
        pixels = [to_landmark_pixels(verts[b:b + 1, getattr(sub, f"landmarks_{k}")], params.focal[b:b + 1], size)
                  for k in ("ibug68", "detector68")]
        out.append((pixels[0] - pixels[1])[0].cpu().numpy())
    return out


def fit_quality(fitted: FitResult, blend: Blend | None, b: int) -> dict:
    """How much to trust face b's fit (FaceResult metadata "fit_quality"): score in [0, 1] (1: the detector and
    the network agree and the fit meets its points), detector_network_gap (median distance between the two
    sets of points / face size; null without a network), detector_share (the detector's mean weight in the
    points followed), residual (the fit's landmark NME at the end)."""
    residual = float(fitted.error_end[b])
    gap = float("nan") if blend is None else blend.disagreement
    worst = max(residual, 0.0 if math.isnan(gap) else gap)
    return {"score": round(float(math.exp(-worst / QUALITY_SCALE)), 4),
            "detector_network_gap": None if math.isnan(gap) else round(gap, 5),
            "detector_share": None if blend is None else round(float(blend.detector_share.mean()), 4),
            "residual": round(residual, 5)}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MlafaceError("--device cuda: no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


class Reconstructor:
    """Loads the face model, landmark provider and network once; reconstructs photo after photo."""

    def __init__(self, options: ReconstructOptions = ReconstructOptions()):
        self.options = options
        self.device = pick_device(options.device)
        self.data = read_model(resolve_model_path(options.model))
        self.model = FaceModel.from_data(self.data).to(self.device)
        self.provider = get_provider(options.provider, str(self.device))
        self.weights = find_network_weights(None, options.weights)
        self.net = load_network(self.weights).to(self.device).eval() if self.weights else None
        self.tile_mesh = TileMesh.from_data(self.data, self.device)
        self.albedo_model = AlbedoModel.load().to(self.device) if SHIPPED_ALBEDO.is_file() else None

    def with_options(self, **changes) -> Reconstructor:
        """The same loaded models with other run options (fit_steps, texture_size, all_faces)."""
        other = copy.copy(self)
        other.options = replace(self.options, **changes)
        return other

    def detect(self, path: str | Path) -> tuple[np.ndarray, list[Face]]:
        image = load_image(path)
        return image, detect_faces(self.provider, image, str(path), self.options.all_faces)

    def reconstruct(self, path: str | Path, progress=None) -> list[FaceResult]:
        """All faces (options.all_faces) or the largest face of one photo, largest first."""
        start = time.perf_counter()
        image, faces = self.detect(path)
        detect_s = time.perf_counter() - start
        return [self.reconstruct_faces([image], [face], [str(path)], [i], False, detect_s, progress)[0]
                for i, face in enumerate(faces)]

    def reconstruct_same_person(self, paths: list[str | Path], progress=None) -> list[FaceResult]:
        """One identity fitted to the largest face of every photo; expression, pose and light per photo."""
        start = time.perf_counter()
        detected = [self.detect(p) for p in paths]
        detect_s = (time.perf_counter() - start) / len(paths)
        return self.reconstruct_faces([im for im, _ in detected], [faces[0] for _, faces in detected],
                                      [str(p) for p in paths], [0] * len(paths), True, detect_s, progress)

    @torch.no_grad()
    def network_start(self, images: list[np.ndarray], faces: list[Face], cfg: FitConfig) -> NetworkStart | None:
        """What the network predicts for the faces, in the photo cameras (focal from cfg's field of view, the
        fit's prior); None without trained weights. The first crop comes from the detector's box (its points
        may be wrong on a turned face), each next one from the network's own 68 points of the one before: the
        framing it was trained on (NETWORK_PASSES in all). The last pass reads the points from shifted crops
        too (LAST_PASS_SHIFTS), each mirror-averaged; the parameters come from its centred crop."""
        if self.net is None:
            return None
        B, size = len(images), self.net.cfg.image_size
        sizes = [im.shape[:2] for im in images]
        focal = torch.tensor([focal_from_fov(s, cfg.fov_deg) for s in sizes], device=self.device)
        boxes = [box_from_detection(f.box) for f in faces]
        for i in range(NETWORK_PASSES):
            last = i == NETWORK_PASSES - 1
            shifts = LAST_PASS_SHIFTS if last and self.net.cfg.points else ((0, 0),)
            crops = [crop_from_box(im, shifted_box(box, dx, dy), size, math.sqrt(2))
                     for dx, dy in shifts for im, box in zip(images, boxes, strict=True)]  # shift-major: [S * B]
            x = torch.from_numpy(np.stack([c.image for c in crops])).to(self.device).permute(0, 3, 1, 2).float() / 255
            params, head_points, sigma = self.net.predict(x)
            if head_points is not None and last:
                head_points, sigma = mirror_averaged(self.net, x, head_points, sigma)
            params, centred = params.rows(slice(0, B)), crops[:B]
            marks = self.model.landmarks(self.model.vertices(params.identity, params.expression))  # [B, 68, 3]
            params = params.crop_to_photo(np.stack([c.to_photo for c in centred]), sizes, size, focal,
                                          marks.mean(1))
            if head_points is None:  # the face model's landmark vertices, projected
                cam = to_camera(marks, params.rotation, params.translation)
                points = np.stack([to_landmark_pixels(cam[b:b + 1], params.focal[b:b + 1], sizes[b])[0].cpu().numpy()
                                   for b in range(B)])
            else:
                points = np.stack([c.points_to_photo(p) for c, p in zip(crops, head_points.cpu().numpy(),
                                                                        strict=True)])
                points = points.reshape(len(shifts), B, 68, 2).mean(0)
            boxes = [landmark_box(p) for p in points]
        scale = np.array([c.to_photo[0, 0] for c in crops])  # photo pixels per crop pixel (no rotation)
        if sigma is not None:
            sigma = (sigma.cpu().numpy() * scale[:, None]).reshape(len(shifts), B, 68).mean(0)
        return NetworkStart(params, points, sigma)

    def fit_faces(self, images: list[np.ndarray], faces: list[Face], shared: bool, cfg: FitConfig | None = None,
                  progress=None, seconds: dict | None = None) -> tuple[FitResult, list[Blend | None]]:
        """The face model fitted to faces already found (images [H, W, 3] uint8 and their Face), from the
        network's prediction where there is a network, to the blend of the detector's and the network's points
        (reconstruct/blend.py, fitted with the whole contour: FitConfig.for_3d_points; the detector's alone
        without a network); shared: one identity for all. cfg:
        default from the options (fit_steps). seconds: gets "network" and "fit", per face. -> the fit and each
        face's Blend (None without a network)."""
        cfg = cfg or self.options.fit_config()
        t0 = time.perf_counter()
        start = self.network_start(images, faces, cfg)
        t1 = time.perf_counter()
        if start is None:
            blends, targets = [None] * len(faces), [f.landmarks for f in faces]
        else:
            yaw = np.degrees(np.arcsin(start.params.rotation[:, 0, 2].clamp(-1, 1).cpu().numpy()))
            shift = detector_to_3d(self.model, start.params, [im.shape[:2] for im in images])
            blends = [blend_landmarks(None if f.landmarks is None else f.landmarks + shift[b], start.landmarks[b],
                                      None if start.sigma is None else start.sigma[b], float(yaw[b]))
                      for b, f in enumerate(faces)]
            targets = [bl.targets for bl in blends]
            cfg = cfg.for_3d_points()
        fitted = fit(self.model, images, targets, cfg, None if start is None else start.params,
                     shared_identity=shared, progress=progress)
        if seconds is not None:
            seconds.update(network=(t1 - t0) / len(images), fit=(time.perf_counter() - t1) / len(images))
        return fitted, blends

    def face_result(self, fitted: FitResult, blend: Blend | None, b: int, image: np.ndarray, face: Face, path: str,
                    index: int, shared: bool, seconds: dict[str, float]) -> FaceResult:
        """Row b of a fit as a FaceResult: the texture unwrapped from its photo (image, face as fitted), the
        source path and face index, whether the identity was shared, `seconds` per stage before this one (the
        texture's time is added). blend: the points the fit followed (fit_faces), for the fit-quality score."""
        t0 = time.perf_counter()
        p, d = fitted.params, self.data
        neutral = self.model.vertices(p.identity[b:b + 1], torch.zeros_like(p.expression[b:b + 1]))[0]
        cam = p.rows(slice(b, b + 1)).camera_vertices(self.model)[0]
        fitted_points = fitted.landmarks[b].cpu().numpy()
        tex = extract_texture(image, cam, self.tile_mesh, float(p.focal[b]), p.sh[b], landmark_box(fitted_points),
                              self.options.texture_size, self.albedo_model).image
        meta = {
            "mlaface_version": __version__, "landmark_provider": face.provider, "detector_score": face.score,
            "network_weights": str(self.weights) if self.weights else None, "fit_steps": self.options.fit_steps,
            "same_person": shared,
            "landmark_nme_start": float(fitted.error_start[b]), "landmark_nme_end": float(fitted.error_end[b]),
            "fit_quality": fit_quality(fitted, blend, b),
            "device": str(self.device), "seconds": {**seconds, "texture": time.perf_counter() - t0},
            "model_source": d.source,
        }

        def row(t: torch.Tensor) -> np.ndarray:
            return t[b].cpu().numpy().astype(np.float32)

        return FaceResult(
            vertices=neutral.cpu().numpy().astype(np.float32),
            polygon_sizes=d.polygon_sizes, corner_vertex=d.corner_vertex, corner_uv=d.corner_uv,
            polygon_material=d.polygon_material, material_names=d.material_names, material_roles=d.material_roles,
            material_parts=d.material_parts, expression_names=d.expression_names,
            expression_deltas=d.expression_basis, expression_weights=row(p.expression), rotation=row(p.rotation),
            translation=row(p.translation), focal=float(p.focal[b]), image_size=np.array(image.shape[:2], np.int32),
            texture=tex, texture_tile=self.tile_mesh.tile, landmarks=face.landmarks.astype(np.float32),
            fitted_landmarks=row(fitted.landmarks), identity=row(p.identity), sh=row(p.sh),
            photo=str(Path(path).resolve()), face_index=int(index), metadata=json.dumps(meta))

    def reconstruct_faces(self, images: list[np.ndarray], faces: list[Face], paths: list[str], indices: list[int],
                          shared: bool, detect_s: float = 0.0, progress=None) -> list[FaceResult]:
        """Faces already found (images [H, W, 3] uint8, their Face, source path and face index) -> FaceResults;
        shared: one identity for all."""
        seconds = {"detect": detect_s}
        fitted, blends = self.fit_faces(images, faces, shared, progress=progress, seconds=seconds)
        return [self.face_result(fitted, blends[b], b, images[b], faces[b], paths[b], indices[b], shared, seconds)
                for b in range(len(images))]
