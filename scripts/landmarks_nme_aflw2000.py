"""68-point NME of a landmark provider on AFLW2000-3D (standard protocol, training/aflw2000.py), with the
provider's own detector: faces it does not find are counted and left out of the NME, as in the data README.
A second table keeps only the faces dlib's plain HOG detector (upsample 1) finds, the data README's setting.

    python scripts/landmarks_nme_aflw2000.py [--data ../shared/data/aflw2000-3d-dev] [--provider dlib]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from backend.detect.landmarks import get_provider, iou
from backend.io.images import load_image
from training.aflw2000 import balanced_table, format_table, load_samples, nme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    parser.add_argument("--provider", default="dlib")
    args = parser.parse_args()
    provider = get_provider(args.provider)
    samples = load_samples(args.data)
    import dlib

    hog = dlib.get_frontal_face_detector()
    errors, yaws, hog_found = [], [], []
    start = time.perf_counter()
    for s in samples:
        image = load_image(s.image)
        faces = provider.detect(image)
        best = max(faces, key=lambda f: iou(f.box, s.box), default=None)
        if best is None or iou(best.box, s.box) < 0.2:
            continue
        errors.append(nme(best.landmarks, s.pts68))
        yaws.append(s.yaw_deg)
        hog_found.append(any(iou((r.left(), r.top(), r.right(), r.bottom()), s.box) >= 0.2 for r in hog(image, 1)))
    print(f"provider {provider.name}: found {len(errors)} of {len(samples)} faces "
          f"({time.perf_counter() - start:.0f} s); NME % on the found faces:")
    print(format_table(balanced_table(errors, yaws)))
    print(f"median NME {100 * float(np.median(errors)):.3f} %")
    keep = np.array(hog_found)
    print(f"\non the {keep.sum()} faces dlib's HOG detector alone finds:")
    print(format_table(balanced_table(list(np.array(errors)[keep]), list(np.array(yaws)[keep]))))


if __name__ == "__main__":
    main()
