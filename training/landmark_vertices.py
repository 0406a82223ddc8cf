"""Which model vertices are the iBUG-68 landmarks: chosen to follow the teacher's own points on the training crops.

    python -m training.landmark_vertices runs/labels/teacher68.npz [--model PATH] [--per-bin 400] [--held-out 300]

ICT-FaceKit marks 68 vertices as the iBUG landmarks, where a 2D detector such as dlib puts its points (the model's
"detector68" set keeps them), but the benchmark's 3D landmarks (AFLW2000-3D, 300W-LP: BFM vertices) and the teacher
trained on them sit elsewhere on some points: the inner brow ends 6 mm farther from the middle, the outer brows 2 mm
lower, the nose bridge 3-5 mm lower, the inner eye corners 2 mm higher. Fitted to the teacher's points, the model
leaves that as a systematic residual, and so does every fit that follows such points (the network's, the blend's).
This command fits the model (the pipeline's fit for 3D points, 40 steps) to --per-bin training crops per |yaw| bin
(0-30, 30-60, 60-90; crops the labels keep, by a fixed seed), then moves each landmark to the vertex of the front
face within RADIUS of it (and facing the camera of a frontal photo) whose projections under the fitted faces come
nearest the teacher's points on average, and repeats until no point moves (at most ROUNDS). Only the teacher's own
points count: those the labels took from AFLW's annotations (`from_truth`) follow AFLW's convention; a point with
fewer than MIN_COUNTED of them (the nose tip, always AFLW's where seen) stays. It starts from ICT's own vertices (the
model's "detector68"), so it gives the same table on any installed model. The fit floor before and after is
printed on --held-out other crops per bin, and the moved points as the table for backend/model/facekit.py
(IBUG68_MOVED).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from backend.io.errors import MlafaceError
from backend.model.face_model import FaceModel
from backend.model.store import resolve_model_path
from backend.reconstruct.fitting import FitConfig, fit
from backend.render.camera import to_landmark_pixels
from backend.render.shading import vertex_normals

from .teacher_labels import read_file

CROP = 120  # the AFLW crops' side, pixels
RADIUS = 0.02  # metres: how far from its current vertex a landmark may move in one round
ROUNDS = 4
MIN_COUNTED = 30  # crops with the teacher's own point that a landmark needs to move
BINS = ((0, 30), (30, 60), (60, 90))
GROUPS = {"contour": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
          "mouth": range(48, 68)}


def sample(yaw: np.ndarray, keep: np.ndarray, per_bin: int, held_out: int, seed: int = 0):
    """Two disjoint index sets [3 * per_bin], [3 * held_out] of kept crops, the same count from each |yaw| bin."""
    rng = np.random.default_rng(seed)
    chosen, other = [], []
    for lo, hi in BINS:
        pool = np.where((np.abs(yaw) >= lo) & (np.abs(yaw) < hi) & keep)[0]
        if len(pool) < per_bin + held_out:
            raise MlafaceError(f"only {len(pool)} kept crops at |yaw| {lo}-{hi}, {per_bin + held_out} needed")
        pick = rng.choice(pool, per_bin + held_out, replace=False)
        chosen.append(pick[:per_bin])
        other.append(pick[per_bin:])
    return np.concatenate(chosen), np.concatenate(other)


def fitted(model: FaceModel, points: torch.Tensor):
    """The 3D points' fit of `model` to points [N, 68, 2] (crop pixels, NaN where not counted) -> FitResult."""
    blank = np.zeros((1, 1, 3), np.uint8)
    images = [np.broadcast_to(blank, (CROP, CROP, 3))] * len(points)
    return fit(model, images, [p.numpy().astype(np.float64) for p in points], FitConfig(light=False).for_3d_points())


def box_size(points: torch.Tensor) -> torch.Tensor:
    """[N] sqrt(w * h) of the box of each crop's counted points (points [N, 68, 2], NaN where not counted)."""
    hi = torch.nan_to_num(points, nan=-torch.inf).amax(1)
    lo = torch.nan_to_num(points, nan=torch.inf).amin(1)
    return torch.sqrt(torch.prod(hi - lo, dim=1))


def point_errors(result, points: torch.Tensor) -> np.ndarray:
    """[N, 68] distance of the fitted landmarks from `points`, % of box_size (NaN where not counted)."""
    return ((result.landmarks - points).norm(dim=2) / box_size(points)[:, None]).numpy() * 100


def floor_line(label: str, err: np.ndarray) -> str:
    by_bin = " / ".join(f"{np.nanmean(e):.2f}" for e in np.split(err, 3))
    groups = ", ".join(f"{g} {np.nanmean(err[:, list(ix)]):.2f}" for g, ix in GROUPS.items())
    return f"{label}: {by_bin} by |yaw| bin ({groups})"


def choose(full: FaceModel, points: torch.Tensor, log=print) -> torch.Tensor:
    """[68] vertex ids of `full` for the iBUG-68 landmarks, from its own, following points [N, 68, 2]."""
    mean = full.mean.view(-1, 3)
    facing = vertex_normals(mean[None], full.triangles)[0, full.face_region, 2] > 0
    front = full.face_region[facing]  # the front face's vertices that face the camera of a frontal photo
    chosen = full.landmarks_ibug68.clone()
    counted = torch.isfinite(points).all(2)  # [N, 68]
    size = box_size(points)
    for rnd in range(ROUNDS):
        near = [front[(mean[front] - mean[chosen[k]]).norm(dim=1) < RADIUS] for k in range(68)]
        near = [torch.unique(torch.cat([c, chosen[k:k + 1]])) for k, c in enumerate(near)]
        keep = torch.unique(torch.cat(near + [chosen, full.landmarks_aflw21]))
        sub = full.subset(keep)
        new_id = torch.full((full.n_vertices,), -1, dtype=torch.int64)
        new_id[keep] = torch.arange(len(keep))
        sub.landmarks_ibug68.copy_(new_id[chosen])
        result = fitted(sub, points)
        log(floor_line(f"round {rnd + 1}, fitted to the points chosen from", point_errors(result, points)))
        with torch.no_grad():
            pix = to_landmark_pixels(result.params.camera_vertices(sub), result.params.focal, (CROP, CROP))
        moved = 0
        for k in range(68):
            m = counted[:, k]
            if m.sum() < MIN_COUNTED:  # e.g. the nose tip: the labels hold AFLW's there
                continue
            d = ((pix[m][:, new_id[near[k]]] - points[m][:, k:k + 1]).norm(dim=2) / size[m, None]).mean(0)
            best = near[k][d.argmin()]
            moved += int(best != chosen[k])
            chosen[k] = best
        log(f"round {rnd + 1}: {moved} points moved")
        if not moved:
            break
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.landmark_vertices", description=__doc__.split("\n")[0])
    p.add_argument("labels", type=Path, help="the teacher labels file (python -m training.teacher_labels)")
    p.add_argument("--model", type=Path, help="face model file (default: the installed one)")
    p.add_argument("--per-bin", type=int, default=400, help="crops per |yaw| bin the vertices are chosen on")
    p.add_argument("--held-out", type=int, default=300, help="other crops per |yaw| bin the floor is checked on")
    args = p.parse_args(argv)
    try:
        labels = read_file(args.labels)
        full = FaceModel.load(resolve_model_path(args.model))
        pick, check = sample(labels["yaw_deg"], labels["weight"] > 0, args.per_bin, args.held_out)
        points = torch.tensor(labels["points"], dtype=torch.float32)
        points[torch.tensor(labels["from_truth"])] = float("nan")  # AFLW's points: another convention
        ict = full.landmarks_detector68.clone()  # upstream's own vertices: the start, whatever the model's table
        full.landmarks_ibug68.copy_(ict)
        before = point_errors(fitted(full.landmark_subset(), points[check]), points[check])
        chosen = choose(full, points[pick])
        full.landmarks_ibug68.copy_(chosen)
        after = point_errors(fitted(full.landmark_subset(), points[check]), points[check])
    except MlafaceError as e:
        print(f"landmark_vertices: error: {e}", file=sys.stderr)
        return 1
    print(floor_line(f"held-out fit floor ({args.held_out} crops a bin), ICT's vertices", before))
    print(floor_line("held-out fit floor, the chosen landmarks", after))
    mean = full.mean.view(-1, 3)
    moved = {k: (int(ict[k]), int(chosen[k])) for k in range(68) if chosen[k] != ict[k]}
    for k, (a, b) in moved.items():
        print(f"iBUG {k}: vertex {a} -> {b} ({float((mean[b] - mean[a]).norm()) * 1000:.1f} mm)")
    print(f"IBUG68_MOVED = {moved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
