"""Face crops: a similarity transform from the 68 landmarks to a canonical square crop, or a square crop around a
box (benchmark protocols), with the maps between crop and photo pixels.

Coordinates are 0-based pixel centres, as in landmarks.py. A map is a [2, 3] float64 matrix M taking (x, y) to
M[:, :2] @ (x, y) + M[:, 2].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..io.errors import MlafaceError

# The 68 iBUG landmarks of the ICT-FaceKit neutral face seen from the front (orthographic), in units of the crop
# side: the landmarks' bounding square is centred and spans 1 / sqrt(2) of the crop, which is the framing of
# `crop_from_box(..., scale=sqrt(2))` (3DDFA_V2's crop from 68 points), so aligned and boxed crops agree.
TEMPLATE_68 = np.array([
    (0.1464, 0.2920), (0.1506, 0.3969), (0.1669, 0.4907), (0.1852, 0.5816), (0.2251, 0.6839), (0.2934, 0.7666),
    (0.3535, 0.8004), (0.4262, 0.8170), (0.5000, 0.8319), (0.5738, 0.8170), (0.6465, 0.8004), (0.7066, 0.7666),
    (0.7749, 0.6839), (0.8148, 0.5816), (0.8331, 0.4907), (0.8494, 0.3969), (0.8536, 0.2920), (0.2208, 0.2189),
    (0.2631, 0.1815), (0.3179, 0.1681), (0.3841, 0.1712), (0.4437, 0.1848), (0.5563, 0.1848), (0.6159, 0.1712),
    (0.6821, 0.1681), (0.7369, 0.1815), (0.7792, 0.2189), (0.5000, 0.2889), (0.5000, 0.3420), (0.5000, 0.3911),
    (0.5000, 0.4490), (0.4398, 0.5235), (0.4711, 0.5231), (0.5000, 0.5263), (0.5289, 0.5231), (0.5602, 0.5235),
    (0.2859, 0.3037), (0.3142, 0.2824), (0.3664, 0.2795), (0.4115, 0.3124), (0.3689, 0.3204), (0.3148, 0.3210),
    (0.5885, 0.3123), (0.6336, 0.2795), (0.6858, 0.2824), (0.7141, 0.3037), (0.6852, 0.3210), (0.6311, 0.3204),
    (0.3783, 0.6375), (0.4183, 0.6018), (0.4650, 0.5848), (0.5000, 0.5877), (0.5350, 0.5848), (0.5817, 0.6018),
    (0.6217, 0.6375), (0.5865, 0.6633), (0.5497, 0.6751), (0.5000, 0.6787), (0.4503, 0.6751), (0.4135, 0.6633),
    (0.3939, 0.6361), (0.4522, 0.6268), (0.5000, 0.6281), (0.5478, 0.6268), (0.6061, 0.6361), (0.5513, 0.6308),
    (0.5000, 0.6317), (0.4487, 0.6308),
])
# index of each iBUG-68 point's mirror partner (left and right as seen in the image, as the scheme numbers them)
IBUG68_FLIP = np.array([*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
                        45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56,
                        55, 64, 63, 62, 61, 60, 67, 66, 65])
# Points that expressions and head turns move least: the nose (27-35), the eyes (36-47), the mouth corners.
ALIGN_POINTS = np.r_[27:48, 48, 54]


@dataclass(frozen=True)
class Crop:
    """A square face crop.

    image: [S, S, 3] uint8 RGB; to_photo: [2, 3] crop pixels -> photo pixels; to_crop: [2, 3] the inverse
    """

    image: np.ndarray
    to_photo: np.ndarray
    to_crop: np.ndarray

    def points_to_photo(self, pts: np.ndarray) -> np.ndarray:
        """[N, 2] crop pixels -> photo pixels."""
        return pts @ self.to_photo[:, :2].T + self.to_photo[:, 2]

    def points_to_crop(self, pts: np.ndarray) -> np.ndarray:
        """[N, 2] photo pixels -> crop pixels."""
        return pts @ self.to_crop[:, :2].T + self.to_crop[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of a [2, 3] affine map."""
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, -a @ m[:, 2:]])


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) taking src [N, 2] to
    dst [N, 2], as a [2, 3] map (Umeyama 1991)."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ flip @ vt
    scale = np.trace(np.diag(sigma) @ flip) / s.var(0).sum()
    return np.hstack([scale * rot, (dst_mean - scale * rot @ src_mean)[:, None]])


def photo_region(image: np.ndarray, to_photo: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The part of image [H, W, 3] uint8 under an [h, w] crop whose pixel (x, y) shows photo point
    to_photo @ (x, y, 1), box-filtered when the crop shrinks the photo (so that bilinear sampling does not alias):
    -> region [h', w', 3] uint8 (empty where the crop misses the photo) and the [2, 3] map from crop pixels to
    region pixels. Only that part of the photo is touched, so huge photos are cheap."""
    h, w = size
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], dtype=np.float64)
    photo = corners @ to_photo[:, :2].T + to_photo[:, 2]
    x0, y0 = np.maximum(np.floor(photo.min(0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(photo.max(0)).astype(int) + 3, [image.shape[1], image.shape[0]])
    region = image[y0:max(y0, y1), x0:max(x0, x1)]
    m = to_photo.copy()
    m[:, 2] -= (x0, y0)
    shrink = np.sqrt(abs(np.linalg.det(m[:, :2])))  # photo pixels per crop pixel
    if shrink > 1.5 and region.size:
        rw, rh = max(1, round(region.shape[1] / shrink)), max(1, round(region.shape[0] / shrink))
        fx, fy = region.shape[1] / rw, region.shape[0] / rh
        # contiguous first: PIL copies a strided array element by element (io/images.py, downscaled)
        region = np.asarray(Image.fromarray(np.ascontiguousarray(region)).resize((rw, rh), Image.Resampling.BOX))
        m = np.diag([1 / fx, 1 / fy]) @ m
        m[:, 2] += (0.5 / fx - 0.5, 0.5 / fy - 0.5)
    return region, m


def warp(image: np.ndarray, to_photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample image [H, W, 3] uint8 into an [h, w, 3] crop whose pixel (x, y) shows photo point
    to_photo @ (x, y, 1); bilinear, black outside the photo, antialiased when shrinking (photo_region)."""
    h, w = size
    region, m = photo_region(image, to_photo, size)
    if not region.size:
        return np.zeros((h, w, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    px = xs * m[0, 0] + ys * m[0, 1] + m[0, 2]
    py = xs * m[1, 0] + ys * m[1, 1] + m[1, 2]
    grid = np.stack([(2 * px + 1) / region.shape[1] - 1, (2 * py + 1) / region.shape[0] - 1], -1)
    src = torch.from_numpy(np.array(region)).permute(2, 0, 1)[None].float()
    out = F.grid_sample(src, torch.from_numpy(grid)[None].float(), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def align_face(image: np.ndarray, landmarks68: np.ndarray, size: int = 224) -> Crop:
    """The canonical crop: the similarity that best maps the landmarks' stable points onto TEMPLATE_68."""
    if landmarks68.shape != (68, 2) or not np.isfinite(landmarks68).all():
        raise MlafaceError(f"need 68 finite (x, y) landmarks, got shape {landmarks68.shape}")
    to_crop = similarity(landmarks68[ALIGN_POINTS].astype(np.float64), TEMPLATE_68[ALIGN_POINTS] * size - 0.5)
    to_photo = invert(to_crop)
    return Crop(warp(image, to_photo, (size, size)), to_photo, to_crop)


def crop_from_box(image: np.ndarray, box: tuple[float, float, float, float], size: int = 224,
                  scale: float = np.sqrt(2)) -> Crop:
    """An axis-aligned square crop centred on box (x0, y0, x1, y1), side scale * max(box width, height)."""
    to_photo = box_map(box, size, scale)
    return Crop(warp(image, to_photo, (size, size)), to_photo, invert(to_photo))


def box_map(box: tuple[float, float, float, float], size: int, scale: float) -> np.ndarray:
    """The [2, 3] map from the pixels of `crop_from_box`'s size x size crop to photo pixels."""
    x0, y0, x1, y1 = box
    side = scale * max(x1 - x0, y1 - y0)
    if not side > 0:
        raise MlafaceError(f"empty box {box}")
    f = side / size
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # crop pixel centre (x + 0.5) / size of the way across the square
    return np.array([[f, 0, cx - side / 2 + 0.5 * f], [0, f, cy - side / 2 + 0.5 * f]])


# Where the 68 points sit in the dlib provider's face box (scripts/detector_framing.py, medians over 95 faces of
# aflw2000-3d-dev): their box's centre 0.088 box sides below the box's, its side 0.971 of the box's.
DETECTOR_BOX_DY = 0.088
DETECTOR_BOX_SIDE = 0.971


def box_from_detection(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The detector's face box (x0, y0, x1, y1) -> the square the 68 points are expected to fill, for
    `crop_from_box` with the network's framing (scale sqrt(2)) when the detector's points cannot be trusted."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + DETECTOR_BOX_DY * side
    half = DETECTOR_BOX_SIDE * side / 2
    return cx - half, cy - half, cx + half, cy + half


def landmark_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """The bounding box (x0, y0, x1, y1) of points [N, 2]."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
