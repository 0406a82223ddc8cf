"""Checks the blend's two error models (backend/reconstruct/blend.py) on faces that are not the benchmark's: the
500 AFLW crops training holds out (the last 500 of ../shared/data/aflw-crops, never trained on), each scaled up
3 times and run through the pipeline's own path (dlib's detector and points, the network's passes). At the 7
places where AFLW's 21 points and the 68 points mark the same thing (teacher_labels.SAME_PLACE; 13 with the brows
in the README's table; the crop's visible ones), by |yaw| bin (AFLW's yaw), as a fraction of the face size the
blend uses (sqrt(w * h) of the network's
68-point box): dlib's point error against DLIB_ERROR's inner figure, and the network's error against its
confidence head's sigma. The blend weighs the two by their expected errors, so what matters is that both are
right in the same units; this prints them side by side.

    python scripts/blend_calibration.py [--data ../shared/data/aflw-crops] [--count 500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from backend.reconstruct.blend import detector_error, face_size
from backend.reconstruct.options import ReconstructOptions
from backend.reconstruct.pipeline import Reconstructor
from training.aflw2000 import YAW_BINS, yaw_bin
from training.teacher_labels import SAME_PLACE

UPSCALE = 3  # the 120-pixel crops scaled to 360: dlib's detector and shape model want more than 85 pixels a face


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/aflw-crops"))
    parser.add_argument("--count", type=int, default=500, help="the last COUNT crops (training holds out 500)")
    args = parser.parse_args()
    with np.load(args.data / "annotations.npz", allow_pickle=False) as a:
        names, pts21, yaws = a["names"][-args.count:], a["pts21"][-args.count:], a["yaw_deg"][-args.count:]
    rec = Reconstructor(ReconstructOptions(device="cpu"))
    aflw, ibug = np.array(list(SAME_PLACE)), np.array(list(SAME_PLACE.values()))
    rows, missed = [], 0
    for name, truth, yaw in zip(names, pts21, yaws, strict=True):
        with Image.open(args.data / "images" / str(name)) as im:
            size = im.size[0] * UPSCALE
            image = np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC))
        faces = rec.provider.detect(image, largest=True)
        if not faces:
            missed += 1
            continue
        start = rec.network_start([image], faces[:1], rec.options.fit_config())
        scale = size / 120
        seen = np.isfinite(truth[aflw]).all(1)
        true = (truth[aflw][seen] + 0.5) * scale - 0.5  # crop pixels (0-based centres) -> the scaled image's
        norm = face_size(start.landmarks[0])
        rows.append({"bin": yaw_bin(float(yaw)),
                     "dlib": np.linalg.norm(faces[0].landmarks[ibug][seen] - true, axis=1) / norm,
                     "net": np.linalg.norm(start.landmarks[0][ibug][seen] - true, axis=1) / norm,
                     "sigma": start.sigma[0][ibug][seen] / norm})
    print(f"{len(rows)} of {len(names)} held-out crops with a face found ({missed} missed); per point, % of the "
          "face size, at the 13 places both schemes mark (visible ones)")
    print("|yaw|    faces  dlib median  mean  DLIB_ERROR | network median  mean  sigma mean  mean error / sigma")
    for k, (lo, hi) in enumerate(YAW_BINS):
        sel = [r for r in rows if r["bin"] == k]
        if not sel:
            continue
        dlib, net, sigma = (np.concatenate([r[key] for r in sel]) for key in ("dlib", "net", "sigma"))
        expected = detector_error((lo + hi) / 2)[30]  # an inner point's
        print(f"{lo:2.0f}-{hi:2.0f}  {len(sel):6d}  {100 * np.median(dlib):11.2f}  {100 * dlib.mean():4.2f}  "
              f"{100 * expected:10.2f} | {100 * np.median(net):14.2f}  {100 * net.mean():4.2f}  "
              f"{100 * sigma.mean():10.2f}  {net.mean() / sigma.mean():18.2f}")


if __name__ == "__main__":
    main()
