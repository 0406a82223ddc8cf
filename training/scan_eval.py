"""`mlaface evaluate scans DIR`: the reconstructed shape against 3D scans (NoW, MICC Florence, or a manifest;
training/scan_files.py), scored by the protocols' alignment and scan-to-mesh distance (training/shape_metric.py).

Every case is scored for four predictions, so that a number always has its reference beside it:
    mean face      the face model's mean (no photo at all)
    landmark fit   the fit to the detected 68 points alone, from the mean face (no network)
    network        the network's prediction, not fitted (0 fitting steps)
    network + fit  what `mlaface reconstruct` gives (the network's start, then the fit)
The shape compared is the person's neutral face (FaceResult.vertices: identity, no expression), as NoW and MICC
scans are neutral; its skin and eyeballs (the mouth's inside, teeth and the see-through eye layers left out).
Cases a method cannot reconstruct (no face found) are listed and left out of every method's row.

Writes OUT/scans.json (table, per subject, per case) and OUT/scans_error.png (the cropped scan of the median case
coloured by its distance to each prediction) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from backend.io.atomic import write_bytes_atomic
from backend.io.errors import MlafaceError
from backend.io.images import png_bytes
from backend.reconstruct.pipeline import ReconstructOptions, Reconstructor

from .scan_files import FRAME_STEP, MAX_FRAMES, VIDEO_SUFFIXES, ScanCase, find_cases, load_scan
from .shape_metric import NOW_LANDMARKS, Surface, scan_errors

METHODS = ("mean face", "landmark fit", "network", "network + fit")
SHAPE_ROLES = ("face", "head", "sclera", "iris")  # the surfaces a scan of a face shows


def shape_surface(data) -> tuple[np.ndarray, np.ndarray]:
    """The face model's triangles [T, 3] a scan is compared with, and its 7 NoW landmark vertices [7]."""
    keep = np.isin(np.asarray(data.material_roles)[data.polygon_material[data.triangle_polygon]], SHAPE_ROLES)
    return data.triangles[keep], data.landmarks_ibug68[list(NOW_LANDMARKS)]


def case_photos(case: ScanCase, folder: Path) -> list[Path]:
    """The case's photos; a video's frames (every FRAME_STEP-th, at most MAX_FRAMES) written as PNGs."""
    if len(case.photos) == 1 and case.photos[0].suffix.lower() in VIDEO_SUFFIXES:
        from backend.clip.video import open_clip

        _, frames = open_clip(case.photos[0], step=FRAME_STEP)
        out = []
        for frame in frames:
            out.append(write_bytes_atomic(folder / f"{case.subject}_{frame.index:06d}.png", png_bytes(frame.image)))
            if len(out) == MAX_FRAMES:
                break
        return out
    return list(case.photos)


def predictions(rec: Reconstructor, photos: list[Path]) -> dict[str, np.ndarray]:
    """Each method's neutral face [V, 3] in millimetres, model space; a method that finds no face is left out."""
    out = {"mean face": rec.data.mean.astype(np.float64) * 1000}
    plain = rec.with_options()
    plain.net = None
    for method, r in (("landmark fit", plain), ("network", rec.with_options(fit_steps=0)), ("network + fit", rec)):
        if method != "landmark fit" and rec.net is None:
            continue
        try:
            result = (r.reconstruct_same_person(photos) if len(photos) > 1 else r.reconstruct(photos[0]))[0]
        except MlafaceError as e:
            print(f"  {method}: {e}", file=sys.stderr)
            continue
        out[method] = result.vertices.astype(np.float64) * 1000
    return out


def summary(errors: list[np.ndarray]) -> dict:
    e = np.concatenate(errors) if errors else np.zeros(0)
    if not e.size:
        return {"mean": None, "median": None, "std": None, "points": 0}
    return {"mean": round(float(e.mean()), 4), "median": round(float(np.median(e)), 4),
            "std": round(float(e.std()), 4), "points": int(e.size)}


def error_picture(points: np.ndarray, errors: dict[str, np.ndarray], path: Path, title: str) -> None:
    """The cropped scan seen from the front, coloured by distance (mm) to each method's aligned prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(errors), figsize=(3.2 * len(errors), 3.6), squeeze=False)
    order = np.argsort(points[:, 2])  # far points first, near ones on top
    for ax, (method, e) in zip(axes[0], errors.items(), strict=True):
        sc = ax.scatter(points[order, 0], points[order, 1], c=e[order], s=1.5, cmap="inferno", vmin=0, vmax=6)
        ax.set_title(f"{method}\nmean {e.mean():.2f} mm", fontsize=9)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.colorbar(sc, ax=axes[0].tolist(), shrink=0.8, label="scan to mesh, mm")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(table: dict) -> None:
    print(f"{'':16}{'mean':>8}{'median':>8}{'std':>8}   mm, scan to mesh")
    for method, row in table.items():
        if row["points"]:
            print(f"{method:16}{row['mean']:8.3f}{row['median']:8.3f}{row['std']:8.3f}")


def run(args: argparse.Namespace) -> int:
    cases = find_cases(args.data, args.layout)[:: args.every]
    rec = Reconstructor(ReconstructOptions(device=args.device, model=args.model, weights=args.weights,
                                           fit_steps=args.fit_steps, texture_size=256))
    tris, marks = shape_surface(rec.data)
    per_case, skipped, start = [], [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlaface-scans-") as tmp:
        for i, case in enumerate(cases):
            scan = load_scan(case)
            preds = predictions(rec, case_photos(case, Path(tmp)))
            missing = [m for m in METHODS if m not in preds and (m == "landmark fit" or rec.net is not None)]
            if missing:
                skipped.append({"case": case.name, "missing": missing})
                continue
            scored = {}
            for method, verts in preds.items():
                errors, cropped, _ = scan_errors(scan.vertices, scan.landmarks, Surface(verts, tris), verts[marks])
                scored[method] = errors
            per_case.append({"case": case.name, "subject": case.subject, "points": cropped, "errors": scored})
            print(f"[{i + 1}/{len(cases)}] {case.name}: " + ", ".join(f"{m} {e.mean():.2f}" for m, e in
                                                                         scored.items()) + " mm", file=sys.stderr)
    if not per_case:
        raise MlafaceError(f"{args.data}: no case could be scored by every method ({len(skipped)} skipped)")
    methods = list(per_case[0]["errors"])
    table = {m: summary([c["errors"][m] for c in per_case]) for m in methods}
    subjects = sorted({c["subject"] for c in per_case})
    by_subject = {s: {m: summary([c["errors"][m] for c in per_case if c["subject"] == s]) for m in methods}
                  for s in subjects}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    last = methods[-1]
    median_case = sorted(per_case, key=lambda c: c["errors"][last].mean())[len(per_case) // 2]
    error_picture(median_case["points"], median_case["errors"], out / "scans_error.png",
                  f"{median_case['case']} (the median case by {last})")
    report = {"data": str(args.data), "layout": args.layout, "cases": len(per_case), "skipped": skipped,
              "settings": {"fit_steps": args.fit_steps, "weights": str(rec.weights), "every": args.every},
              "seconds": round(time.perf_counter() - start, 1), "table": table, "subjects": by_subject,
              "per_case": [{"case": c["case"], "subject": c["subject"],
                            **{m: summary([e]) for m, e in c["errors"].items()}} for c in per_case]}
    write_bytes_atomic(out / "scans.json", json.dumps(report, indent=1).encode())
    print(f"{len(per_case)} cases ({len(skipped)} skipped: no face found by a method), {len(subjects)} subjects")
    print_table(table)
    print(f"wrote {out / 'scans.json'} and {out / 'scans_error.png'}")
    return 0
