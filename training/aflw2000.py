"""The AFLW2000-3D benchmark protocol (3DDFA / 3DDFA_V2 / SynergyNet): 68-point 2D NME.

NME of one face = mean point-to-point distance / sqrt(w * h) of the bounding box of the ground-truth 68 points
(`pt3d_68` rows x and y, image pixels). Faces are grouped by |yaw| in [0, 30], (30, 60], (60, 90] degrees (yaw from
`Pose_Para`); the reported figure is the mean of the three group means ("balanced"). The input crop is taken from
the ground-truth 68-point box (3DDFA_V2 style): see backend.detect.align.crop_from_box with scale sqrt(2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.io.errors import MlafaceError

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))


@dataclass(frozen=True)
class Sample:
    """One benchmark face. image: path; pts68: [68, 2] (x, y) pixels; pts68_z: [68] (pt3d_68 row z);
    yaw_deg: signed yaw in degrees."""

    image: Path
    pts68: np.ndarray
    pts68_z: np.ndarray
    yaw_deg: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        lo, hi = self.pts68.min(0), self.pts68.max(0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def load_samples(folder: str | Path) -> list[Sample]:
    """Every `imageNNNNN.jpg` with its `.mat` in folder, sorted by name."""
    from scipy.io import loadmat

    folder = Path(folder)
    mats = sorted(folder.glob("*.mat"))
    if not mats:
        raise MlafaceError(f"{folder}: no AFLW2000-3D .mat files")
    out = []
    for mat in mats:
        m = loadmat(mat)
        pts = np.asarray(m["pt3d_68"], dtype=np.float64)
        out.append(Sample(mat.with_suffix(".jpg"), pts[:2].T.copy(), pts[2].copy(),
                          float(np.degrees(m["Pose_Para"][0, 1]))))
    return out


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    """pred, gt: [68, 2] -> mean distance / sqrt(w * h) of gt's bounding box."""
    w, h = gt.max(0) - gt.min(0)
    return float(np.linalg.norm(pred - gt, axis=1).mean() / np.sqrt(w * h))


def yaw_bin(yaw_deg: float) -> int:
    a = min(abs(yaw_deg), 90.0)
    return 0 if a <= 30 else 1 if a <= 60 else 2


def balanced_table(errors: list[float], yaws: list[float]) -> dict:
    """{"bins": [(label, count, mean NME %)], "balanced": mean of the bin means %, "mean": overall %}."""
    errors_a, bins = np.asarray(errors), np.array([yaw_bin(y) for y in yaws])
    rows, means = [], []
    for k, (lo, hi) in enumerate(YAW_BINS):
        sel = errors_a[bins == k]
        mean = float(sel.mean() * 100) if len(sel) else float("nan")
        rows.append((f"{lo:.0f}-{hi:.0f}", int(len(sel)), mean))
        if len(sel):
            means.append(mean)
    return {"bins": rows, "balanced": float(np.mean(means)) if means else float("nan"),
            "mean": float(errors_a.mean() * 100) if len(errors_a) else float("nan")}


def format_table(table: dict) -> str:
    head = "  ".join(f"|yaw| {label:>6} (n={n:3d})" for label, n, _ in table["bins"])
    vals = "  ".join(f"{v:21.3f}" for _, _, v in table["bins"])
    return f"{head}  balanced\n{vals}  {table['balanced']:8.3f}"


# 3DDFA_V2 (MobileNet x0.5, the public 120x120 model) on the 500 images of aflw2000-3d-dev, measured by the data's
# README with the same protocol: the row printed beside ours.
REFERENCE_3DDFA_V2 = {"label": "3DDFA_V2 (README)", "bins": [2.977, 3.577, 4.881], "balanced": 3.812}


def rigid_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """src moved onto dst [N, 3] by the best rotation and translation (Kabsch; no scale, no reflection)."""
    s, d = src - src.mean(0), dst - dst.mean(0)
    u, _, vt = np.linalg.svd(s.T @ d)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ flip @ vt
    return s @ rot + dst.mean(0)


def nme_3d(pred: np.ndarray, gt: np.ndarray, gt_2d: np.ndarray) -> float:
    """pred, gt: [68, 3] image-pixel x, y and depth in pixel units; rigidly aligned, then the mean distance over
    sqrt(w * h) of gt_2d's box (the 2D NME's normaliser)."""
    w, h = gt_2d.max(0) - gt_2d.min(0)
    return float(np.linalg.norm(rigid_align(pred, gt) - gt, axis=1).mean() / np.sqrt(w * h))
