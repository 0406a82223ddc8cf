"""Calibrates the pipeline's use of the detector (backend/reconstruct/blend.py): how the dlib provider's face box
sits on the 68 points (centre offset and size, for the network's crop from the box), and how far dlib's 68 points
are off by |yaw| bin (the detected points' expected error in the blending rule). On every 5th image of the folder
(100 of aflw2000-3d-dev), with the provider's own detector; faces it misses are counted.

    python scripts/detector_framing.py [--data ../shared/data/aflw2000-3d-dev] [--every 5]
"""

from __future__ import annotations

import argparse

import numpy as np

from backend.detect.landmarks import get_provider, iou
from backend.io.images import load_image
from training.aflw2000 import YAW_BINS, load_samples, yaw_bin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    parser.add_argument("--every", type=int, default=5)
    args = parser.parse_args()
    provider = get_provider("dlib")
    samples = load_samples(args.data)[::args.every]
    rows, missed = [], 0
    for s in samples:
        faces = provider.detect(load_image(s.image))
        best = max(faces, key=lambda f: iou(f.box, s.box), default=None)
        if best is None or iou(best.box, s.box) < 0.2:
            missed += 1
            continue
        x0, y0, x1, y1 = best.box
        side = max(x1 - x0, y1 - y0)
        lo, hi = s.pts68.min(0), s.pts68.max(0)
        w, h = hi - lo
        rows.append({"bin": yaw_bin(s.yaw_deg),
                     "dx": ((lo[0] + hi[0]) / 2 - (x0 + x1) / 2) / side,
                     "dy": ((lo[1] + hi[1]) / 2 - (y0 + y1) / 2) / side,
                     "side": max(w, h) / side,
                     "err": np.linalg.norm(best.landmarks - s.pts68, axis=1) / np.sqrt(w * h)})
    print(f"{len(rows)} of {len(samples)} faces found ({missed} missed)")
    med = {k: float(np.median([r[k] for r in rows])) for k in ("dx", "dy", "side")}
    print("the 68-point box against the detector's box (medians, in box sides): "
          f"centre offset x {med['dx']:+.3f}, y {med['dy']:+.3f}; side ratio {med['side']:.3f}")
    print("dlib's point error by |yaw| bin (per point / sqrt(w * h) of the 68-point box, %):")
    for k, (lo, hi) in enumerate(YAW_BINS):
        errs = np.array([r["err"] for r in rows if r["bin"] == k])
        if len(errs):
            print(f"  {lo:2.0f}-{hi:2.0f}: {len(errs):3d} faces, median point {100 * np.median(errs):5.2f}, "
                  f"mean {100 * errs.mean():5.2f}; contour (0-16) median {100 * np.median(errs[:, :17]):5.2f}, "
                  f"inner median {100 * np.median(errs[:, 17:]):5.2f}")


if __name__ == "__main__":
    main()
