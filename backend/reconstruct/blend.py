"""The points a fit follows: the detector's 68 landmarks and the network's, blended by their expected errors.

dlib's points are right on frontal faces and wrong on turned ones (beyond ~30 degrees it follows the silhouette
or loses the face); the network's points (its points head's, or the projected landmark vertices of its
prediction) are right at every pose to within what its confidence head says. The rule, per face and point:

1. the network's point p_net with its expected error s_net: the confidence head's sigma (crop pixels scaled into
   the photo); a network without a confidence head gets NETWORK_ERROR of the face size;
2. the detector's point p_det (moved into the 3D points' convention by the caller: pipeline.detector_to_3d) with
   its expected error s_det: DLIB_ERROR, dlib's point error measured by |yaw|
   bin (scripts/detector_framing.py on every 5th image of aflw2000-3d-dev; the jaw contour apart from the inner
   points; beyond 60 degrees none to speak of), interpolated at the network's |yaw|, times the face size
   (sqrt(w * h) of the network's 68-point box); on a face turned more than CONTOUR_YAW_DEG the far side's jaw
   contour is the silhouette's, not the face's points (detect/landmarks.py, far_contour): not used (the whole path
   on the dev images 4.689 -> 4.640 balanced, 30-60 degrees 4.839 -> 4.709; the fit had the rule already);
3. a detector's point farther than GATE * sqrt(s_det^2 + s_net^2) from the network's is an outlier: not used;
4. the target is the inverse-variance mean (p_det / s_det^2 + p_net / s_net^2) / (1 / s_det^2 + 1 / s_net^2).

So on a frontal face the inner points are mostly dlib's, on a profile (or where the detector's points are
corrupted) they are the network's; the share of the detector in each point is returned for the fit-quality score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..detect.landmarks import far_contour

CONTOUR = slice(0, 17)  # iBUG-68 jaw contour
DLIB_YAW_DEG = (15.0, 45.0, 75.0)  # centres of the |yaw| bins 0-30, 30-60, 60-90
# dlib's point error by |yaw| bin, of the face size: its medians (the gate takes out the gross errors that make its
# means twice as large); beyond 60 degrees (median 23%: it has lost the face, not blurred it) no information
DLIB_ERROR = {"contour": (0.055, 0.146, 1.0), "inner": (0.021, 0.040, 1.0)}
NETWORK_ERROR = 0.08  # of the face size, for networks without a confidence head: mlanet_r18's pipeline points
# score 5.0 / 7.9 / 10.4 NME by |yaw| bin on every 10th dev image, 7.8 on average
GATE = 3.0


@dataclass(frozen=True)
class Blend:
    """targets: [68, 2] photo pixels; network: [68, 2] the network's points; detector_share: [68] in [0, 1], the
    detector's weight in each point; disagreement: median distance between the detector's and the network's
    points / face size (NaN without detected points)."""

    targets: np.ndarray
    network: np.ndarray
    detector_share: np.ndarray
    disagreement: float


def face_size(points: np.ndarray) -> float:
    """sqrt(w * h) of the box of points [N, 2] (the benchmark's normaliser), pixels."""
    w, h = points.max(0) - points.min(0)
    return float(np.sqrt(max(w * h, 1e-6)))


def detector_error(yaw_deg: float) -> np.ndarray:
    """[68] dlib's expected point error at head yaw `yaw_deg` (signed, degrees), a fraction of the face size; inf
    where its points are not the face's (the far contour of a turned face)."""
    a = min(abs(yaw_deg), 90.0)
    out = np.full(68, np.interp(a, DLIB_YAW_DEG, DLIB_ERROR["inner"]))
    out[CONTOUR] = np.interp(a, DLIB_YAW_DEG, DLIB_ERROR["contour"])
    far = far_contour(yaw_deg)
    if far is not None:
        out[far] = np.inf
    return out


def blend_landmarks(detected: np.ndarray | None, predicted: np.ndarray, predicted_sigma: np.ndarray | None,
                    yaw_deg: float) -> Blend:
    """detected: [68, 2] photo pixels or None (no detection); predicted: [68, 2] the network's points;
    predicted_sigma: [68] their expected error in photo pixels, or None; yaw_deg: the network's head yaw."""
    size = face_size(predicted)
    s_net = np.full(68, NETWORK_ERROR * size) if predicted_sigma is None else np.maximum(predicted_sigma, 1e-3)
    if detected is None or not np.isfinite(detected).all():
        return Blend(predicted.copy(), predicted, np.zeros(68), float("nan"))
    s_det = detector_error(yaw_deg) * size
    gap = np.linalg.norm(detected - predicted, axis=1)
    w_det = np.where(gap <= GATE * np.hypot(s_det, s_net), 1 / s_det**2, 0.0)
    w_net = 1 / s_net**2
    share = w_det / (w_det + w_net)
    targets = share[:, None] * detected + (1 - share[:, None]) * predicted
    return Blend(targets, predicted, share, float(np.median(gap) / size))
