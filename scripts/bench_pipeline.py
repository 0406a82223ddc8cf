"""End-to-end seconds per photo on this machine, by stage: detect + landmarks, network, fitting, texture, export.
Without trained weights the network stage is timed with an untrained default network on the aligned crop.

    python scripts/bench_pipeline.py [PHOTOS...] [--fit-steps 150] [--texture-size 1024] [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from backend.detect.align import align_face
from backend.io.images import find_photos
from backend.network.mlanet import create_network
from backend.reconstruct.batch import FORMATS, write_outputs
from backend.reconstruct.pipeline import ReconstructOptions, Reconstructor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", default=["../shared/data/faces"])
    parser.add_argument("--fit-steps", type=int, default=150)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    rec = Reconstructor(ReconstructOptions(device=args.device, fit_steps=args.fit_steps,
                                           texture_size=args.texture_size))
    net = rec.net or create_network().to(rec.device).eval()
    print(f"device {rec.device}, {torch.get_num_threads()} threads, fit steps {args.fit_steps}, "
          f"texture {args.texture_size}, network {'trained' if rec.net else 'untrained (timing only)'}")
    print(f"{'photo':18s} {'detect':>7s} {'network':>8s} {'fit':>7s} {'texture':>8s} {'export':>7s} {'total':>7s}")
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for photo in find_photos(args.photos):
            result = rec.reconstruct(photo)[0]
            s = result.meta["seconds"]
            image, faces = rec.detect(photo)
            crop = torch.from_numpy(align_face(image, faces[0].landmarks, net.cfg.image_size).image)
            x = crop.permute(2, 0, 1)[None].float().div(255).to(rec.device)
            start = time.perf_counter()
            with torch.no_grad():
                net(x)
            network = time.perf_counter() - start
            start = time.perf_counter()
            write_outputs(result, Path(out), photo.stem, list(FORMATS))
            export = time.perf_counter() - start
            row = [s["detect"], network, s["fit"], s["texture"], export]
            rows.append(row)
            print(f"{photo.name:18s} " + " ".join(f"{v:7.2f}s" for v in row) + f" {sum(row):6.2f}s")
    print(f"{'median':18s} " + " ".join(f"{v:7.2f}s" for v in np.median(rows, 0)) +
          f" {float(np.median(np.sum(rows, 1))):6.2f}s")


if __name__ == "__main__":
    main()
