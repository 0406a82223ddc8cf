"""68-point training labels for the AFLW crops from the landmark teacher (training/teacher.py), with test-time
augmentation and the crops' own ground truth.

    python -m training.teacher_labels ../shared/data/aflw-crops -o runs/labels/teacher68.npz [--sheet PNG]

1. Test-time augmentation: every crop is read by the teacher as it is, mirrored (points swapped back with the
   68-point permutation IBUG68_FLIP), zoomed in and out and shifted (AUGMENTS); each variant's points are mapped
   back into the crop. The label is the per-point median; the spread (median distance of the variants from it,
   crop pixels) gives a confidence in (0, 1].
2. Reconciliation with each crop's visible AFLW-21 points, which are right by definition where they exist: the
   points that mark the same place in both schemes (SAME_PLACE: eye corners, nose tip, mouth corners; not the
   brows, which AFLW marks lower) take the ground truth (confidence 1, `from_truth`); a crop whose labels disagree
   with its visible points by more than DROP_NME (mean distance / sqrt(w h) of their box) gets weight 0 (dropped).
3. The labels file (versioned npz, `FORMAT`) is written outside the repository (AFLW: research use only; the
   teacher's bases: academic use): names [N], points [N, 68, 2] float32 crop pixels (0-based centres), confidence
   [N, 68] float32, from_truth [N, 68] bool, weight [N] float32, rotation [N, 3, 3] float32 (the teacher's head
   pose, model -> camera in render/camera.py's axes), yaw_deg [N] (AFLW's), error [N] float32 (the teacher's
   disagreement with the visible points before reconciliation).
The error table printed by yaw bin is the teacher against the visible points that SAME_PLACE maps: without and
with augmentation, and on the crops kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from backend.detect.align import IBUG68_FLIP, warp
from backend.io.errors import MlafaceError
from backend.io.npz_file import read_npz, write_npz

from .aflw2000 import YAW_BINS
from .aflw_crops import load_crops
from .teacher import SIZE, Teacher

FORMAT, FORMAT_VERSION = "mlaface.teacher_labels", 1
# AFLW-21 point -> the iBUG-68 point at the same place (left/right as seen in the image, as both schemes are)
# (not the brows: AFLW's sit lower than the teacher's by 2.0-2.9% of the face size at the four inner brow points in
# every |yaw| bin, the other points by 1.3% or less; 3,000 crops, the teacher's plain reading; brows taken from
# AFLW made the network follow AFLW's brows, and the model's landmarks fitted to such labels missed by 3%)
SAME_PLACE = {6: 36, 8: 39, 9: 42, 11: 45, 14: 30, 17: 48, 19: 54}
# (zoom, shift x, shift y, mirrored): zoom > 1 shows the face larger; shifts in crop pixels
AUGMENTS = ((1.0, 0, 0, False), (1.0, 0, 0, True), (0.92, 0, 0, False), (1.08, 0, 0, False), (1.0, 4, 0, False),
            (1.0, -4, 0, False), (1.0, 0, 4, False), (1.0, 0, -4, True))
SPREAD_UNIT = 1.5  # crop pixels of spread at which the confidence is 1/2
DROP_NME = 0.10


class Labels(NamedTuple):
    """The labels of a list of crops: points [N, 68, 2] crop pixels, weights [N, 68] (confidence times the crop's
    weight), yaw_deg [N] the teacher's head yaw."""

    points: np.ndarray
    weights: np.ndarray
    yaw_deg: np.ndarray


def read_file(path: str | Path) -> dict[str, np.ndarray]:
    """The labels file's arrays, checked (names, points, confidence, from_truth, weight, yaw_deg, ...)."""
    return read_npz(path, FORMAT, FORMAT_VERSION, "teacher labels file",
                    ["names", "points", "confidence", "from_truth", "weight", "yaw_deg"],
                    "; make it again with `python -m training.teacher_labels`")


def read_labels(path: str | Path, names: np.ndarray) -> Labels:
    """The labels file for crops `names` (in that order)."""
    a = read_file(path)
    row = {str(n): i for i, n in enumerate(a["names"])}
    missing = [str(n) for n in names if str(n) not in row]
    if missing:
        raise MlafaceError(f"{path}: no labels for {len(missing)} crops (e.g. {missing[0]})")
    order = np.array([row[str(n)] for n in names])
    return Labels(a["points"][order], (a["confidence"] * a["weight"][:, None])[order], a["yaw_deg"][order])


def augment_map(zoom: float, dx: float, dy: float, mirrored: bool) -> np.ndarray:
    """[2, 3] the variant's pixels -> the crop's pixels (0-based centres): a zoom about the centre and a shift,
    then the mirror."""
    c = (SIZE - 1) / 2
    m = np.array([[1 / zoom, 0, c - c / zoom + dx], [0, 1 / zoom, c - c / zoom + dy]])
    if mirrored:
        m[0] = -m[0]
        m[0, 2] += SIZE - 1
    return m


def read_crops(teacher: Teacher, crops: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """crops: [N, 120, 120, 3] uint8 -> (every variant's points [V, N, 68, 2] in the crop's pixels, the teacher's
    rotation [N, 3, 3] of the crop as it is)."""
    out = np.empty((len(AUGMENTS), len(crops), 68, 2), np.float32)
    rotation = np.empty((len(crops), 3, 3), np.float32)
    for v, (zoom, dx, dy, mirrored) in enumerate(AUGMENTS):
        m = augment_map(zoom, dx, dy, mirrored)
        for i in range(0, len(crops), batch):
            chunk = crops[i:i + batch]
            seen = np.stack([warp(c, m, (SIZE, SIZE)) for c in chunk]) if v else chunk
            pts, pose = teacher.predict(seen)
            pts = pts[..., :2] @ m[:, :2].T + m[:, 2]
            out[v, i:i + batch] = pts[:, IBUG68_FLIP] if mirrored else pts
            if v == 0:
                rotation[i:i + batch] = _rotation(pose)
    return out, rotation


def _rotation(pose: np.ndarray) -> np.ndarray:
    """[B, 3, 4] the teacher's scaled [R | t] (y up, z towards the camera) -> [B, 3, 3] the nearest rotations."""
    u, _, vt = np.linalg.svd(pose[:, :, :3])
    return u @ vt


def nme_on_truth(points: np.ndarray, pts21: np.ndarray) -> np.ndarray:
    """[N, 68, 2] labels against [N, 21, 2] visible truth (NaN hidden) at SAME_PLACE -> [N] mean distance / sqrt(w h)
    of the visible 21 points' box; NaN where fewer than 3 mapped points are visible."""
    a, i = np.array(list(SAME_PLACE)), np.array(list(SAME_PLACE.values()))
    d = np.linalg.norm(points[:, i] - pts21[:, a], axis=2)  # NaN where hidden
    visible = np.isfinite(pts21).all(2)
    lo = np.where(visible[..., None], pts21, np.inf).min(1)
    hi = np.where(visible[..., None], pts21, -np.inf).max(1)
    size = np.sqrt(np.prod(np.clip(hi - lo, 1.0, None), 1))
    seen = np.isfinite(d)
    mean = np.where(seen, d, 0).sum(1) / np.maximum(seen.sum(1), 1)
    return np.where(seen.sum(1) >= 3, mean / size, np.nan)


def reconcile(points: np.ndarray, confidence: np.ndarray, pts21: np.ndarray) -> dict[str, np.ndarray]:
    """Step 2 -> points, confidence, from_truth [N, 68] and weight [N] (0 where the crop disagrees, by DROP_NME),
    error [N] (before)."""
    error = nme_on_truth(points, pts21)
    points, confidence = points.copy(), confidence.copy()
    from_truth = np.zeros(points.shape[:2], bool)
    for a, i in SAME_PLACE.items():
        seen = np.isfinite(pts21[:, a]).all(1)
        points[seen, i] = pts21[seen, a]
        confidence[seen, i] = 1.0
        from_truth[seen, i] = True
    weight = np.where(np.nan_to_num(error, nan=0.0) > DROP_NME, 0.0, 1.0).astype(np.float32)
    return {"points": points, "confidence": confidence, "from_truth": from_truth, "weight": weight, "error": error}


def label(teacher: Teacher, crops: np.ndarray, pts21: np.ndarray) -> dict[str, np.ndarray]:
    """Steps 1 and 2 for crops [N, 120, 120, 3] with their AFLW-21 points -> the labels file's arrays (less names
    and yaw) and `raw` [N, 68, 2], the plain crop's reading."""
    variants, rotation = read_crops(teacher, crops)
    median = np.median(variants, 0)
    spread = np.median(np.linalg.norm(variants - median, axis=3), 0)
    confidence = 1 / (1 + (spread / SPREAD_UNIT) ** 2)
    out = reconcile(median, confidence, pts21)
    return {**out, "rotation": rotation, "raw": variants[0]}


def error_table(yaw: np.ndarray, rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """rows: name -> ([N] NME, [N] bool used) -> a table of mean NME (%) by |yaw| bin and balanced."""
    lines = [f"{'':34s}" + "".join(f"{f'{lo:g}-{hi:g}':>10s}" for lo, hi in YAW_BINS)
             + f"{'balanced':>10s}{'crops':>8s}"]
    for name, (nme, used) in rows.items():
        means = []
        for lo, hi in YAW_BINS:
            m = used & np.isfinite(nme) & (np.abs(yaw) >= lo) & (np.abs(yaw) <= hi)
            means.append(100 * float(nme[m].mean()) if m.any() else float("nan"))
        lines.append(f"{name:34s}" + "".join(f"{v:10.2f}" for v in means) + f"{np.mean(means):10.2f}"
                     f"{int((used & np.isfinite(nme)).sum()):8d}")
    return "\n".join(lines)


def draw_sheet(crops: np.ndarray, labels: dict, yaw: np.ndarray, path: Path, per_bin: int = 8) -> Path:
    """A sheet of labelled crops, a row per yaw bin: confident points green, doubtful red, ground truth blue.
    For looking at only (AFLW crops: never commit it)."""
    from PIL import Image, ImageDraw

    scale = 2
    sheet = Image.new("RGB", (per_bin * SIZE * scale, len(YAW_BINS) * SIZE * scale), "white")
    draw = ImageDraw.Draw(sheet)
    rng = np.random.default_rng(0)
    for r, (lo, hi) in enumerate(YAW_BINS):
        ids = np.flatnonzero((np.abs(yaw) >= lo) & (np.abs(yaw) <= hi))
        for c, i in enumerate(rng.choice(ids, min(per_bin, len(ids)), replace=False)):
            x0, y0 = c * SIZE * scale, r * SIZE * scale
            sheet.paste(Image.fromarray(crops[i]).resize((SIZE * scale, SIZE * scale)), (x0, y0))
            for (x, y), conf, truth in zip(labels["points"][i], labels["confidence"][i], labels["from_truth"][i],
                                           strict=True):
                colour = (40, 90, 255) if truth else (int(255 * (1 - conf)), int(255 * conf), 40)
                px, py = x0 + (x + 0.5) * scale, y0 + (y + 0.5) * scale
                draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
            if labels["weight"][i] == 0:
                draw.rectangle([x0, y0, x0 + SIZE * scale - 1, y0 + SIZE * scale - 1], outline=(255, 0, 0), width=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.teacher_labels", description=__doc__.split("\n")[0])
    p.add_argument("crops", type=Path, help="the aflw-crops folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="labels file (.npz), outside the repository")
    p.add_argument("--teacher", type=Path, default=Path("../shared/data/teacher-3ddfa"))
    p.add_argument("--limit", type=int, default=None, help="the first N crops only")
    p.add_argument("--sheet", type=Path, default=None, help="also draw a sheet of labelled crops (PNG)")
    args = p.parse_args(argv)
    try:
        start = time.perf_counter()
        teacher = Teacher.load(args.teacher)
        names, crops, pts21, yaw = load_crops(args.crops, args.limit)
        labels = label(teacher, crops, pts21)
        raw = nme_on_truth(labels.pop("raw"), pts21)
        everyone = np.ones(len(names), bool)
        table = error_table(yaw, {"teacher, plain crop": (raw, everyone),
                                  "teacher, augmented (label)": (labels["error"], everyone),
                                  "labels kept (weight 1)": (labels["error"], labels["weight"] > 0)})
        write_npz(args.output, FORMAT, FORMAT_VERSION, {**labels, "names": names, "yaw_deg": yaw})
        if args.sheet:
            draw_sheet(crops, labels, yaw, args.sheet)
    except MlafaceError as e:
        print(f"teacher_labels: error: {e}", file=sys.stderr)
        return 1
    dropped = int((labels["weight"] == 0).sum())
    print("68-point labels against the crops' visible AFLW-21 points (NME %, the points SAME_PLACE maps):")
    print(table)
    print(json.dumps({"crops": len(names), "dropped": dropped, "drop_nme": DROP_NME,
                      "points_from_truth": int(labels["from_truth"].sum()),
                      "mean_confidence": round(float(labels["confidence"].mean()), 3),
                      "seconds": round(time.perf_counter() - start, 1), "output": str(args.output)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
