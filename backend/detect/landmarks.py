"""Face detection and 68-point (iBUG) landmarks, offline, behind one interface.

    provider = get_provider("auto")             # "dlib", "fan" or "auto" (the best available)
    faces = provider.detect(image)               # image: [H, W, 3] uint8 RGB -> list[Face], largest first
    faces = provider.detect(image, largest=True) # the largest face alone: cheaper on large photos

Providers:
- "dlib" (default; extra `mlaface[dlib]`): dlib's HOG face detector and its 68-point shape predictor, whose model
  file comes from the `face-recognition-models` package. Detection runs on a copy downscaled to DETECT_MAX_SIDE
  pixels and the boxes are mapped back, so very large photos cost no more than ordinary ones (when only the
  largest face is wanted, first on a COARSE_SIDE copy, which suffices when a face spans COARSE_MIN_FACE of its
  pixels); the predictor then works on the full-resolution photo. The HOG detector runs at the image's own scale
  and upsampled twice (each pass misses faces the other finds; overlaps are merged; for the largest face alone the
  upsampled pass runs only when the first finds no sure face). Detections scoring below
  HOG_SURE are checked by dlib's CNN face detector (also in face-recognition-models) on a small crop around them
  (CONFIRM_SIDE), which rejects HOG's false alarms (a mission patch, a pattern) at little cost; when HOG finds
  nothing, the CNN detector searches the photo (downscaled to CNN_MAX_SIDE), which finds turned faces HOG misses,
  in about 0.9 s at 450 x 450 on 2 cores; when only the largest face is wanted, first on a CNN_COARSE_SIDE copy
  (0.43 s), which finds any face spanning a quarter of the photo (the detector's window is about 80 pixels).
  Its boxes are tighter than HOG's, which the shape predictor was trained on, so they are enlarged by CNN_TO_HOG
  (measured on AFLW2000-3D faces both detectors found: HOG boxes are 1.13x as wide and 0.04 widths lower, median).
- "fan": the 2D-FAN network of face-alignment (Bulat & Tzimiropoulos 2017), used only when its TorchScript weights
  (`2DFAN4*.zip`) are already in the torch hub cache (`torch.hub.get_dir()/checkpoints`, where face-alignment
  stores them); nothing is ever downloaded. Faces are found by the dlib detector, or given as boxes.

Coordinates: photo pixels, 0-based, (0, 0) the centre of the top-left pixel (dlib's, OpenCV's and .pts files'
convention less 1). camera.py's pixel space puts that point at (0.5, 0.5): add 0.5 to go there.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.errors import MlafaceError
from ..io.images import downscaled

DETECT_MAX_SIDE = 1024
COARSE_SIDE, COARSE_MIN_FACE = 512, 80  # the largest face alone: first looked for at this size, kept from this size
HOG_SURE = 0.5
# the CNN check's crop: the face about 80 pixels, the CNN detector's own window (on 33 unsure HOG boxes of the dev
# images and sample photos, 160 and 240 pixels made the same decisions; 160 takes 0.26 s, 240 0.6 s)
CONFIRM_SIDE = 160
CNN_MAX_SIDE = 640
# the CNN search for the largest face alone, first: on the 20 dev images of the first 80 that HOG misses, a 320 copy
# found the face the 640 copy finds in 19 (box IoU 0.64-0.93; the other had none in either) in 0.43 s, not 0.9; a
# 256 copy (0.27 s) too, but its boxes cost the whole path one profile face on every 2nd dev image
CNN_COARSE_SIDE = 320
CNN_TO_HOG = (1.13, 0.04)  # scale, downward shift in box widths
PROVIDERS = ("dlib", "fan")
# On a face turned more than CONTOUR_YAW_DEG a detector's jaw contour on the far side follows the silhouette, not
# fixed points of the face; which side is far, by the sign of the yaw (far_contour)
CONTOUR_YAW_DEG = 20.0
FAR_CONTOUR = {1: slice(9, 17), -1: slice(0, 8)}


@dataclass(frozen=True)
class Face:
    """One detected face.

    box: (x0, y0, x1, y1) photo pixels, the outer edges of the box's border pixels
    landmarks: [68, 2] float32 (x, y) photo pixels, iBUG order
    score: detector confidence (dlib HOG's SVM margin or the CNN detector's confidence)
    provider: the landmark provider that ran
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    provider: str

    @property
    def area(self) -> float:
        return _area(self.box)


def far_contour(yaw_deg: float) -> slice | None:
    """iBUG-68 indices of the jaw contour a detector draws along the silhouette on a face at head yaw `yaw_deg`
    (degrees, asin of the camera rotation's [0, 2]; > 0: the face looks towards image right and its left cheek,
    iBUG 9-16, turns away), or None within CONTOUR_YAW_DEG of frontal."""
    if abs(yaw_deg) <= CONTOUR_YAW_DEG:
        return None
    return FAR_CONTOUR[1 if yaw_deg > 0 else -1]


def dlib_predictor_path() -> Path | None:
    """The 68-point model of the face-recognition-models package, without importing it (its __init__ needs
    pkg_resources, which current setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / "shape_predictor_68_face_landmarks.dat"
        if path.is_file():
            return path
    return None


class DlibProvider:
    """dlib HOG detector + 68-point shape predictor."""

    name = "dlib"

    def __init__(self, upsamples: tuple[int, ...] = (0, 1)):
        try:
            import dlib
        except ImportError:
            raise MlafaceError("the dlib landmark provider needs dlib: pip install 'mlaface[dlib]'") from None
        model = dlib_predictor_path()
        if model is None:
            raise MlafaceError("dlib's 68-point model is missing: pip install 'mlaface[dlib]' "
                               "(package face-recognition-models)")
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._cnn = dlib.cnn_face_detection_model_v1(str(model.parent / "mmod_human_face_detector.dat"))
        self._predictor = dlib.shape_predictor(str(model))
        self.upsamples = upsamples

    def boxes(self, image: np.ndarray, largest: bool = False) -> list[tuple[tuple[float, float, float, float], float]]:
        """[(box, score)] of the faces in image, photo pixels. largest: only the largest face is wanted, so a
        photo larger than COARSE_SIDE is searched first on a copy that size (a quarter of the work or less), and
        what is found there is kept when a face spans COARSE_MIN_FACE of its pixels (smaller faces may be
        missed; a larger one would have been found); the CNN search where HOG finds nothing likewise starts on a
        CNN_COARSE_SIDE copy."""
        if largest and max(image.shape[:2]) > COARSE_SIDE:
            kept, f = self._hog(image, COARSE_SIDE, largest)
            if kept and max(max(b[2] - b[0], b[3] - b[1]) for b, _ in kept) >= COARSE_MIN_FACE * f:
                return kept
        kept, _ = self._hog(image, DETECT_MAX_SIDE, largest)
        if not kept and largest and max(image.shape[:2]) > CNN_COARSE_SIDE:
            kept = self._cnn_search(image, CNN_COARSE_SIDE)
        return kept or self._cnn_search(image, CNN_MAX_SIDE)

    def _cnn_search(self, image: np.ndarray, max_side: int) -> list:
        """[(box, score)] of the CNN detector's faces on a copy downscaled to max_side, as HOG would box them."""
        small, f = downscaled(image, max_side)
        return [(_hog_like(_photo_box(d.rect, f)), float(d.confidence))
                for d in self._cnn(np.ascontiguousarray(small), 0)]

    def _hog(self, image: np.ndarray, max_side: int, largest: bool = False) -> tuple[list, float]:
        """The HOG detector's faces, both upsamplings merged, unsure ones checked by the CNN detector, on a copy
        downscaled to max_side: [(box, score)] in photo pixels, and the copy's scale (photo = copy * f).
        largest: the largest face alone is wanted, so a later (upsampled: finer, four times the work) pass runs
        only when the ones before found no sure face."""
        small, f = downscaled(image, max_side)
        small = np.ascontiguousarray(small)
        found = []
        for upsample in self.upsamples:
            if largest and any(score >= HOG_SURE for _, score in found):
                break
            rects, scores, _ = self._detector.run(small, upsample, 0.0)
            found += [(_photo_box(r, f), float(s)) for r, s in zip(rects, scores, strict=True)]
        kept: list = []
        for box, score in sorted(found, key=lambda bs: -bs[1]):
            if all(iou(box, k) < 0.4 for k, _ in kept) and (score >= HOG_SURE or self._cnn_confirms(image, box)):
                kept.append((box, score))
        return kept, f

    def _cnn_confirms(self, image: np.ndarray, box: tuple[float, float, float, float]) -> bool:
        """Whether the CNN detector sees a face at box, run on a crop twice the box's size scaled to CONFIRM_SIDE
        pixels."""
        from .align import crop_from_box

        crop = crop_from_box(image, box, size=CONFIRM_SIDE, scale=2.0)
        q = CONFIRM_SIDE / 4
        return any(iou(_photo_box(d.rect, 1.0), (q, q, 3 * q, 3 * q)) > 0.3
                   for d in self._cnn(np.ascontiguousarray(crop.image), 0))

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """[68, 2] float32 for the face in box."""
        left, top, right, bottom = (int(round(v)) for v in (box[0] + 0.5, box[1] + 0.5, box[2] - 0.5, box[3] - 0.5))
        shape = self._predictor(np.ascontiguousarray(image), self._dlib.rectangle(left, top, right, bottom))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def detect(self, image: np.ndarray, boxes: list | None = None, largest: bool = False) -> list[Face]:
        found = self.boxes(image, largest) if boxes is None else [(tuple(map(float, b)), 1.0) for b in boxes]
        found = _largest(found) if largest else found
        faces = [Face(b, self.landmarks(image, b), s, self.name) for b, s in found]
        return sorted(faces, key=lambda f: -f.area)


def _area(box: tuple[float, float, float, float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _largest(found: list) -> list:
    """[(box, score)] -> the one with the largest box (none if none)."""
    return sorted(found, key=lambda bs: -_area(bs[0]))[:1]


def _photo_box(rect, f: float) -> tuple[float, float, float, float]:
    """A dlib rectangle on a copy scaled by 1/f -> the box's pixel edges in photo coordinates."""
    return (rect.left() * f - 0.5, rect.top() * f - 0.5, (rect.right() + 1) * f - 0.5, (rect.bottom() + 1) * f - 0.5)


def _hog_like(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A CNN-detector box as the HOG detector would draw it (CNN_TO_HOG)."""
    scale, shift = CNN_TO_HOG
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2 + shift * w
    return cx - scale * w / 2, cy - scale * h / 2, cx + scale * w / 2, cy + scale * h / 2


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def fan_weights_path() -> Path | None:
    """face-alignment's 2D-FAN TorchScript file in the torch hub cache, or None. Looks; never downloads."""
    import torch

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    hits = sorted(folder.glob("2DFAN4*.zip")) if folder.is_dir() else []
    return hits[-1] if hits else None


class FanProvider:
    """2D-FAN landmarks (face-alignment's weights, from the torch cache) on dlib boxes."""

    name = "fan"
    _REFERENCE_SCALE = 195.0  # face-alignment's crop scale for a detector box
    _INPUT = 256

    def __init__(self, device: str = "cpu"):
        import torch

        weights = fan_weights_path()
        if weights is None:
            raise MlafaceError(
                f"FAN weights (2DFAN4*.zip) are not in {Path(torch.hub.get_dir()) / 'checkpoints'}; run "
                f"face-alignment once with internet access to fetch them, or use --provider dlib")
        self._torch = torch
        self._net = torch.jit.load(str(weights), map_location=device).eval()
        self._device = device
        self._boxes = DlibProvider()

    def _crop(self, image: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
        """A 256x256 crop around the box as face-alignment makes it, and the [2, 3] map crop -> photo."""
        x0, y0, x1, y1 = box
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2 - (y1 - y0) * 0.12])
        side = 200.0 * (x1 - x0 + y1 - y0) / self._REFERENCE_SCALE
        to_photo = np.array([[side / self._INPUT, 0, centre[0] - side / 2],
                             [0, side / self._INPUT, centre[1] - side / 2]])
        from .align import warp

        return warp(image, to_photo, (self._INPUT, self._INPUT)), to_photo

    def boxes(self, image: np.ndarray, largest: bool = False) -> list[tuple[tuple[float, float, float, float], float]]:
        """The dlib detector's boxes (DlibProvider.boxes)."""
        return self._boxes.boxes(image, largest)

    def detect(self, image: np.ndarray, boxes: list | None = None, largest: bool = False) -> list[Face]:
        torch = self._torch
        found = self.boxes(image, largest) if boxes is None else [(tuple(map(float, b)), 1.0) for b in boxes]
        found = _largest(found) if largest else found
        faces = []
        for box, score in found:
            crop, to_photo = self._crop(image, box)
            x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(255).to(self._device)
            with torch.no_grad():
                heat = self._net(x)[0].float().cpu().numpy()  # [68, 64, 64]
            pts = heatmap_peaks(heat) * (self._INPUT / heat.shape[-1])
            pts = pts @ to_photo[:, :2].T + to_photo[:, 2]
            faces.append(Face(box, pts.astype(np.float32), score, self.name))
        return sorted(faces, key=lambda f: -f.area)


def heatmap_peaks(heat: np.ndarray) -> np.ndarray:
    """[K, h, w] heatmaps -> [K, 2] (x, y) peak positions in heatmap pixels (0-based centres), each moved a
    quarter pixel towards the higher neighbour, as face-alignment decodes them."""
    K, h, w = heat.shape
    flat = heat.reshape(K, -1).argmax(1)
    y, x = np.divmod(flat, w)
    pts = np.stack([x, y], 1).astype(np.float64)
    for k in range(K):
        if 0 < x[k] < w - 1 and 0 < y[k] < h - 1:
            pts[k, 0] += 0.25 * np.sign(heat[k, y[k], x[k] + 1] - heat[k, y[k], x[k] - 1])
            pts[k, 1] += 0.25 * np.sign(heat[k, y[k] + 1, x[k]] - heat[k, y[k] - 1, x[k]])
    return pts


def detect_faces(provider, image: np.ndarray, source: str, all_faces: bool = True) -> list[Face]:
    """provider.detect, largest face first (the largest alone without all_faces); MlafaceError naming `source` when
    there is no face."""
    faces = provider.detect(image, largest=not all_faces)
    if not faces:
        raise MlafaceError(f"{source}: no face found (provider {provider.name})")
    return faces


def available_providers() -> list[str]:
    """Names of the providers that can run here, best first."""
    out = []
    if fan_weights_path() is not None and dlib_predictor_path() is not None:
        out.append("fan")
    if dlib_predictor_path() is not None and importlib.util.find_spec("dlib") is not None:
        out.append("dlib")
    return out


def get_provider(name: str = "auto", device: str = "cpu"):
    """A landmark provider by name ("dlib", "fan") or the best available one ("auto")."""
    if name == "auto":
        available = available_providers()
        if not available:
            raise MlafaceError("no landmark provider can run: pip install 'mlaface[dlib]'")
        name = available[0]
    if name == "dlib":
        return DlibProvider()
    if name == "fan":
        return FanProvider(device)
    raise MlafaceError(f"unknown landmark provider {name!r}; choose auto, {', '.join(PROVIDERS)}")
