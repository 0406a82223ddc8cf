"""CPU time per photo of face detection and of the 68 landmarks (dlib provider), median of a few runs.

    python scripts/bench_landmarks.py [PHOTOS...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from backend.detect.landmarks import DlibProvider
from backend.io.images import find_photos, load_image


def median_ms(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", default=["../shared/data/faces"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    provider = DlibProvider()
    print(f"{'photo':24s} {'size':>11s} {'load ms':>8s} {'detect ms':>10s} {'faces':>5s} {'landmarks ms/face':>18s}")
    for path in find_photos(args.photos):
        load, image = median_ms(lambda p=path: load_image(p), args.repeats)
        detect, boxes = median_ms(lambda im=image: provider.boxes(im), args.repeats)
        marks, _ = median_ms(lambda im=image, b=boxes: [provider.landmarks(im, box) for box, _ in b], args.repeats)
        size = f"{image.shape[1]}x{image.shape[0]}"
        per_face = marks / max(1, len(boxes))
        print(f"{path.name:24s} {size:>11s} {load:8.1f} {detect:10.1f} {len(boxes):5d} {per_face:18.2f}")


if __name__ == "__main__":
    main()
