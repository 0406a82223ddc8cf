"""`mlaface evaluate aflw2000 DIR`: a trained network on AFLW2000-3D by the standard protocol
(training/aflw2000.py): the input crop from the ground-truth 68-point box (sqrt(2) times its side, the network's
input size), the 68 landmark vertices of the predicted face projected back into the photo, NME by yaw bin and
balanced. Also the 3D landmark error: the predicted landmarks as (x, y) photo pixels and depth in the same pixel
units, rigidly aligned to `pt3d_68` (whose z grows towards the viewer, checked on the data: the other sign
aligns worse), over the same normaliser.

Writes OUT/aflw2000.json (table, settings, per-image errors) and OUT/aflw2000_ced.png (cumulative error
distribution), and prints the table beside 3DDFA_V2's on the same images.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from backend.detect.align import IBUG68_FLIP, crop_from_box
from backend.io.atomic import write_bytes_atomic
from backend.io.errors import MlafaceError
from backend.io.images import load_image
from backend.model.face_model import FaceModel
from backend.model.store import find_network_weights
from backend.network.checkpoint import load_network
from backend.network.mlanet import MLANet
from backend.render.camera import project, to_camera

from .aflw2000 import REFERENCE_3DDFA_V2, balanced_table, load_samples, nme, nme_3d
from .plots import ced_plot


@torch.no_grad()
def predict_landmarks(net: MLANet, model: FaceModel, crops: np.ndarray, projected: bool = False) -> np.ndarray:
    """crops: [B, S, S, 3] uint8 -> [B, 68, 3]: crop pixel x, y (0-based; the points head's where the network
    has one and `projected` is False, else the face model's landmark vertices projected) and the projected
    vertices' depth * focal / mean depth (pixel units, larger towards the camera)."""
    device = next(net.parameters()).device
    x = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float() / 255
    p, points, _ = net.predict(x)
    cam = to_camera(model.landmarks(model.vertices(p.identity, p.expression)), p.rotation, p.translation)
    S = net.cfg.image_size
    px = project(cam, p.focal, (S, S))
    depth = px[..., 2]
    z = -(depth - depth.mean(1, keepdim=True)) * p.focal[:, None] / depth.mean(1, keepdim=True)
    xy = px[..., :2] - 0.5 if points is None or projected else points
    return torch.cat([xy, z[..., None]], -1).cpu().numpy()


def evaluate(net: MLANet, model: FaceModel, folder: str | Path, every: int = 1, batch: int = 32, log=None,
             mirror: bool = False, projected: bool = False) -> dict:
    """Every `every`-th image of folder -> {"table": balanced_table of 2D NME, "table_3d": the same for 3D,
    "images": per-image rows}. mirror: test-time augmentation, the mean of the points read from the crop and,
    mirrored back and renumbered (IBUG68_FLIP), from the mirrored crop. projected: score the face model's
    projected landmarks even where the network has a points head."""
    samples = load_samples(folder)[::every]
    S = net.cfg.image_size
    rows = []
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        crops = [crop_from_box(load_image(s.image), s.box, size=S, scale=math.sqrt(2)) for s in chunk]
        images = np.stack([c.image for c in crops])
        pred = predict_landmarks(net, model, images, projected)
        if mirror:
            back = predict_landmarks(net, model, np.ascontiguousarray(images[:, :, ::-1]), projected)[:, IBUG68_FLIP]
            back[..., 0] = S - 1 - back[..., 0]
            pred = (pred + back) / 2
        for s, c, p in zip(chunk, crops, pred, strict=True):
            k = c.to_photo[0, 0]  # photo pixels per crop pixel
            xy = c.points_to_photo(p[:, :2])
            gt3 = np.c_[s.pts68, s.pts68_z]
            rows.append({"image": s.image.name, "yaw_deg": s.yaw_deg, "nme_2d": nme(xy, s.pts68),
                         "nme_3d": nme_3d(np.c_[xy, p[:, 2] * k], gt3, s.pts68)})
        if log:
            log(i + len(chunk), len(samples))
    yaws = [r["yaw_deg"] for r in rows]
    return {"table": balanced_table([r["nme_2d"] for r in rows], yaws),
            "table_3d": balanced_table([r["nme_3d"] for r in rows], yaws), "images": rows}


def evaluate_pipeline(rec, folder: str | Path, every: int = 1, batch: int = 8, log=None) -> dict:
    """The whole path users get (`mlaface reconstruct`), from the full photo: the provider's detector and 68
    points, the network from the detector's box, the blend, the fit with rec's options. The face scored is the
    largest detection, as `mlaface reconstruct` takes it; photos where it does not overlap the ground-truth box
    (IoU < 0.2) or where none is found are listed as missed.
    rec: a backend.reconstruct.pipeline.Reconstructor; every: score every n-th image.
    -> {"table": the fitted points' balanced_table, "tables": the same for the detector's, the network's and the
    blended points, "missed": image names, "images": per-image rows}."""
    from backend.detect.landmarks import iou
    from backend.reconstruct.pipeline import fit_quality

    samples = load_samples(folder)[::every]
    rows, missed, pending = [], [], []

    def flush():
        fitted, blends = rec.fit_faces([im for im, _, _ in pending], [f for _, f, _ in pending], False)
        for b, (_, face, s) in enumerate(pending):
            bl = blends[b]
            row = {"image": s.image.name, "yaw_deg": s.yaw_deg,
                   "nme_2d": nme(fitted.landmarks[b].cpu().numpy(), s.pts68),
                   "nme_detector": nme(face.landmarks, s.pts68),
                   "fit_quality": fit_quality(fitted, bl, b)}
            if bl is not None:
                row.update(nme_network=nme(bl.network, s.pts68), nme_blend=nme(bl.targets, s.pts68))
            rows.append(row)
        pending.clear()

    for i, s in enumerate(samples):
        image = load_image(s.image)
        faces = rec.provider.detect(image, largest=True)  # what `mlaface reconstruct` looks for and takes
        best = faces[0] if faces else None
        if best is None or iou(best.box, s.box) < 0.2:
            missed.append(s.image.name)
        else:
            pending.append((image, best, s))
        if len(pending) == batch or (pending and i == len(samples) - 1):
            flush()
        if log:
            log(i + 1, len(samples))
    yaws = [r["yaw_deg"] for r in rows]
    tables = {key: balanced_table([r[key] for r in rows], yaws)
              for key in ("nme_detector", "nme_network", "nme_blend") if rows and key in rows[0]}
    return {"table": balanced_table([r["nme_2d"] for r in rows], yaws), "tables": tables, "missed": missed,
            "images": rows}


def evaluate_floor(model: FaceModel, folder: str | Path, cfg, every: int = 1, batch: int = 16, log=None) -> dict:
    """The fitting floor: the face model fitted (fit config cfg, from the weak-perspective start) to the
    benchmark's own 68 points as if a perfect detector had found them; what the landmark vertices and the fit's
    rules allow at best. -> {"table": balanced_table, "images": per-image rows}."""
    from backend.reconstruct.fitting import fit

    samples = load_samples(folder)[::every]
    rows = []
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        images = [load_image(s.image) for s in chunk]
        r = fit(model, images, [s.pts68.astype(np.float32) for s in chunk], cfg)
        rows += [{"image": s.image.name, "yaw_deg": s.yaw_deg, "nme_2d": nme(r.landmarks[b].cpu().numpy(), s.pts68)}
                 for b, s in enumerate(chunk)]
        if log:
            log(i + len(chunk), len(samples))
    return {"table": balanced_table([r["nme_2d"] for r in rows], [r["yaw_deg"] for r in rows]), "images": rows}


def format_row(label: str, table: dict) -> str:
    return f"{label[:32]:32s}" + "".join(f"  {v:7.3f}" for _, _, v in table["bins"]) + \
        f"  {table['balanced']:8.3f}  {table['mean']:6.3f}"


def format_pipeline_report(result: dict, network: dict, label: str) -> str:
    """The whole path's table beside its parts', the network alone (ground-truth crop) and the teacher's row."""
    t, ref = result["table"], REFERENCE_3DDFA_V2
    n = sum(c for _, c, _ in t["bins"])
    lines = [f"AFLW2000-3D, 68-point NME (%): the whole path on {n} faces found "
             f"({len(result['missed'])} not found: {', '.join(result['missed']) or 'none'})",
             f"{'':32s}" + "".join(f"  [{b:>5}]" for b, _, _ in t["bins"]) + "  balanced    mean",
             format_row("pipeline: fitted points", t)]
    names = {"nme_detector": "pipeline: detector's points", "nme_network": "pipeline: network's points",
             "nme_blend": "pipeline: blended points"}
    lines += [format_row(names[k], v) for k, v in result["tables"].items()]
    lines += [format_row(f"network only, GT crop ({network['count']})", network["table"]),
              f"{ref['label']:32s}" + "".join(f"  {v:7.3f}" for v in ref["bins"]) + f"  {ref['balanced']:8.3f}",
              f"networks' crops: {label}"]
    return "\n".join(lines)


def format_report(result: dict, label: str) -> str:
    ref = REFERENCE_3DDFA_V2
    t = result["table"]
    lines = [f"AFLW2000-3D, 68-point NME (%), {sum(n for _, n, _ in t['bins'])} images",
             f"{'':32s}" + "".join(f"  [{b:>5}]" for b, _, _ in t["bins"]) + "  balanced    mean",
             f"{label[:32]:32s}" + "".join(f"  {v:7.3f}" for _, _, v in t["bins"]) +
             f"  {t['balanced']:8.3f}  {t['mean']:6.3f}",
             f"{ref['label']:32s}" + "".join(f"  {v:7.3f}" for v in ref["bins"]) + f"  {ref['balanced']:8.3f}",
             f"{label[:26] + ' (3D)':32s}" + "".join(f"  {v:7.3f}" for _, _, v in result["table_3d"]["bins"]) +
             f"  {result['table_3d']['balanced']:8.3f}  {result['table_3d']['mean']:6.3f}"]
    return "\n".join(lines)


def run_floor(args: argparse.Namespace) -> int:
    """`--floor`: the fit to the benchmark's own points, with the detector's rules and with the 3D points' rules
    (what the pipeline uses with a network), at --fit-steps."""
    from backend.reconstruct.fitting import FitConfig
    from backend.reconstruct.pipeline import pick_device

    model = FaceModel.load(args.model).to(pick_device(args.device))
    start = time.perf_counter()
    cfg = FitConfig(steps=args.fit_steps)
    rules = {"detector's rules": cfg, "3D points' rules": cfg.for_3d_points()}
    tables = {}
    for name, c in rules.items():
        tables[name] = evaluate_floor(model, args.data, c, args.every)
    seconds = time.perf_counter() - start
    t = next(iter(tables.values()))["table"]
    print(f"AFLW2000-3D fitting floor, 68-point NME (%): the fit ({args.fit_steps} steps) to the benchmark's own "
          f"points, {sum(n for _, n, _ in t['bins'])} images")
    print(f"{'':32s}" + "".join(f"  [{b:>5}]" for b, _, _ in t["bins"]) + "  balanced    mean")
    for name, r in tables.items():
        print(format_row(name, r["table"]))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    report = {"data": str(args.data), "every": args.every, "fit_steps": args.fit_steps, "seconds": seconds,
              **{name: r for name, r in tables.items()}}
    write_bytes_atomic(out / "aflw2000_floor.json", json.dumps(report, indent=1).encode())
    print(f"wrote {out / 'aflw2000_floor.json'} ({seconds:.0f} s)")
    return 0


def run(args: argparse.Namespace) -> int:
    from backend.reconstruct.pipeline import ReconstructOptions, Reconstructor, pick_device

    if args.every < 1:
        raise MlafaceError(f"--every must be 1 or more, got {args.every}")
    if args.fit_steps is None:
        args.fit_steps = ReconstructOptions().fit_steps
    if args.floor:
        return run_floor(args)
    weights = find_network_weights(args.variant, args.weights)
    if weights is None:
        raise MlafaceError(f"no trained weights for {args.variant}: pass --weights FILE")
    device = pick_device(args.device)
    net = load_network(weights, map_location=str(device)).to(device).eval()
    model = FaceModel.load(args.model).face_subset().to(device)
    start = time.perf_counter()

    def progress(done, total):
        print(f"\revaluating {done}/{total}", end="", file=sys.stderr, flush=True)

    folder = Path(args.data)
    result = evaluate(net, model, folder, args.every, log=progress, mirror=args.mirror, projected=args.projected)
    print(file=sys.stderr)
    label = f"{net.cfg.name} ({Path(weights).name}{', mirror TTA' if args.mirror else ''}" \
            f"{', projected' if args.projected and net.cfg.points else ''})"
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    protocol = ("crop from the ground-truth 68-point box (sqrt(2)), 2D NME / sqrt(w*h), balanced over |yaw| bins "
                "[0,30], (30,60], (60,90]")
    curves = {label: [r["nme_2d"] * 100 for r in result["images"]]}
    if args.pipeline:
        rec = Reconstructor(ReconstructOptions(device=args.device, model=args.model, weights=str(weights),
                                               fit_steps=args.fit_steps))
        whole = evaluate_pipeline(rec, folder, args.every, log=progress)
        print(file=sys.stderr)
        seconds = time.perf_counter() - start
        network = {"table": result["table"], "count": len(result["images"])}
        print(format_pipeline_report(whole, network, label))
        report = {"weights": str(weights), "network": net.cfg.name, "data": str(folder), "every": args.every,
                  "fit_steps": args.fit_steps, "seconds": seconds, "protocol": "the whole path from the full "
                  "photo (detection, landmarks, network, blend, fit), NME as " + protocol.split(", ", 1)[1],
                  "reference": REFERENCE_3DDFA_V2, "network_only": result["table"], **whole}
        name = "aflw2000_pipeline"
        curves["whole path (fitted points)"] = [r["nme_2d"] * 100 for r in whole["images"]]
    else:
        seconds = time.perf_counter() - start
        print(format_report(result, label))
        report = {"weights": str(weights), "network": net.cfg.name, "data": str(folder), "every": args.every,
                  "seconds": seconds, "protocol": protocol, "reference": REFERENCE_3DDFA_V2, **result}
        name = "aflw2000"
    write_bytes_atomic(out / f"{name}.json", json.dumps(report, indent=1).encode())
    ced_plot(curves, out / f"{name}_ced.png", "AFLW2000-3D: cumulative 68-point NME")
    print(f"wrote {out / (name + '.json')} and {out / (name + '_ced.png')} ({seconds:.0f} s)")
    return 0
