"""68-point NME of a landmark provider on AFLW2000-3D (standard protocol, training/aflw2000.py), with the
provider's own detector: faces it does not find are counted and left out of the NME, as in the data README.

    python scripts/landmarks_nme_aflw2000.py [--data ../shared/data/aflw2000-3d-dev] [--provider dlib]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from backend.image_io import load_image
from backend.landmarks import get_provider, iou
from training.aflw2000 import balanced_table, format_table, load_samples, nme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    parser.add_argument("--provider", default="dlib")
    args = parser.parse_args()
    provider = get_provider(args.provider)
    samples = load_samples(args.data)
    errors, yaws, missed = [], [], 0
    start = time.perf_counter()
    for s in samples:
        faces = provider.detect(load_image(s.image))
        best = max(faces, key=lambda f: iou(f.box, s.box), default=None)
        if best is None or iou(best.box, s.box) < 0.2:
            missed += 1
            continue
        errors.append(nme(best.landmarks, s.pts68))
        yaws.append(s.yaw_deg)
    print(f"provider {provider.name}: found {len(errors)} of {len(samples)} faces "
          f"({time.perf_counter() - start:.0f} s); NME % on the found faces:")
    print(format_table(balanced_table(errors, yaws)))
    print(f"median NME {100 * float(np.median(errors)):.3f} %")


if __name__ == "__main__":
    main()
