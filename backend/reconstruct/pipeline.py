"""Photo to FaceResult: detect + landmarks -> aligned crop -> network (when trained weights exist) -> test-time
fitting -> texture -> FaceResult.

    rec = Reconstructor(ReconstructOptions(fit_steps=150))
    results = rec.reconstruct("einstein.jpg")                  # the largest face (all with all_faces=True)
    results = rec.reconstruct_same_person(["a.jpg", "b.jpg"])  # one identity, one expression and pose per photo
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..model.albedo_model import SHIPPED as SHIPPED_ALBEDO
from ..model.albedo_model import AlbedoModel
from ..detect.align import align_face, landmark_box
from ..model.face_model import FaceModel
from ..io.face_result import FaceResult
from .fitting import FitConfig, fit
from ..io.images import load_image
from ..detect.landmarks import Face, detect_faces, get_provider
from ..io.model_file import read_model
from ..model.store import find_network_weights, resolve_model_path
from ..network.mlanet import load_network
from .texture import TileMesh, extract_texture


@dataclass(frozen=True)
class ReconstructOptions:
    device: str = "auto"  # auto, cpu or cuda
    fit_steps: int = 150
    texture_size: int = 1024
    provider: str = "auto"
    all_faces: bool = False
    model: str | None = None  # face model file (default: $MLAFACE_MODEL, then the cache)
    weights: str | None = None  # network weights (default: $MLAFACE_WEIGHTS, shipped, cache)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from ..io.errors import MlafaceError

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
    def _network_start(self, images: list[np.ndarray], faces: list[Face]):
        """Identity, expression and light predicted from aligned crops, or None without trained weights."""
        if self.net is None:
            return None, None, None
        size = self.net.cfg.image_size
        crops = np.stack([align_face(im, f.landmarks, size).image for im, f in zip(images, faces, strict=True)])
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float() / 255
        p = self.net(x)
        return p.identity, p.expression, p.sh

    def reconstruct_faces(self, images: list[np.ndarray], faces: list[Face], paths: list[str], indices: list[int],
                          shared: bool, detect_s: float = 0.0, progress=None, expression_l1: float = 0.0,
                          frontal_only: bool = False) -> list[FaceResult]:
        """Faces already found (images [H, W, 3] uint8, their Face, source path and face index) -> FaceResults;
        shared: one identity for all; expression_l1: the fit's sparsity prior on expressions (clips use it);
        frontal_only: all faces are fitted, but only the one whose head is turned least is returned (and
        textured): a clip's neutral head from its keyframes."""
        t0 = time.perf_counter()
        identity, expression, sh = self._network_start(images, faces)
        t1 = time.perf_counter()
        cfg = FitConfig(steps=self.options.fit_steps, w_expression_l1=expression_l1)
        fitted = fit(self.model, images, [f.landmarks for f in faces], cfg, identity, expression, sh,
                     shared_identity=shared, progress=progress)
        t2 = time.perf_counter()
        d, results = self.data, []
        neutral = self.model.vertices(fitted.identity, torch.zeros_like(fitted.expression))
        expressed = self.model.vertices(fitted.identity, fitted.expression)
        cam = expressed @ fitted.rotation.transpose(1, 2) + fitted.translation[:, None]
        chosen = range(len(images))
        if frontal_only:
            chosen = [int(torch.argmin(fitted.rotation[:, :2, 2].norm(dim=1)))]  # the nose (+z) nearest the view axis
        for b in chosen:
            image, face = images[b], faces[b]
            t3 = time.perf_counter()
            tex = extract_texture(image, cam[b], self.tile_mesh, float(fitted.focal[b]), fitted.sh[b],
                                  landmark_box(face.landmarks), self.options.texture_size, self.albedo_model)
            meta = {
                "mlaface_version": __version__, "landmark_provider": face.provider, "detector_score": face.score,
                "network_weights": str(self.weights) if self.weights else None, "fit_steps": self.options.fit_steps,
                "same_person": shared, "landmark_nme_start": float(fitted.error_start[b]),
                "landmark_nme_end": float(fitted.error_end[b]), "device": str(self.device),
                "seconds": {"detect": detect_s, "network": (t1 - t0) / len(images), "fit": (t2 - t1) / len(images),
                            "texture": time.perf_counter() - t3},
                "model_source": d.source,
            }
            results.append(FaceResult(
                vertices=neutral[b].cpu().numpy().astype(np.float32),
                polygon_sizes=d.polygon_sizes, corner_vertex=d.corner_vertex, corner_uv=d.corner_uv,
                polygon_material=d.polygon_material, material_names=d.material_names,
                material_parts=d.material_parts, expression_names=d.expression_names,
                expression_deltas=d.expression_basis,
                expression_weights=fitted.expression[b].cpu().numpy().astype(np.float32),
                rotation=fitted.rotation[b].cpu().numpy().astype(np.float32),
                translation=fitted.translation[b].cpu().numpy().astype(np.float32),
                focal=float(fitted.focal[b]), image_size=np.array(image.shape[:2], np.int32), texture=tex,
                texture_tile=self.tile_mesh.tile, landmarks=face.landmarks.astype(np.float32),
                fitted_landmarks=fitted.landmarks[b].cpu().numpy().astype(np.float32),
                identity=fitted.identity[b].cpu().numpy().astype(np.float32),
                sh=fitted.sh[b].cpu().numpy().astype(np.float32), photo=str(Path(paths[b]).resolve()),
                face_index=int(indices[b]), metadata=json.dumps(meta)))
        return results
