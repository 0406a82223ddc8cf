"""What `mlaface reconstruct` and `mlaface animate` cost on this machine, at default settings.

1. Per photo (the sample photos, one at a time, after one warm-up): seconds by stage (detect + landmarks,
   network, fit, texture; writing the npz alone, the glb alone, and "files": both as `mlaface reconstruct` writes
   them, batch.write_outputs) and the total of detect to files, "all in"; their medians.
2. A batch: `reconstruct_batch` over --batch photos of --batch-folder into npz + glb: photos/s.
3. Memory: peak resident memory, and with --memory-photos N the resident memory through a batch of N photos
   (the folder's photos again and again): it should stay flat.
4. The test clip (backend/clip/synthetic_clip.py, 50 frames at 256 x 256): `animate`'s seconds by stage and
   frames/s; --clip-height 720 scales its frames to 720 x 720 inside grey 1280 x 720 frames (a 720p clip's
   detection and decoding); --clip FILE times that clip instead.

    python scripts/bench_pipeline.py [PHOTOS...] [--batch-folder DIR] [--batch 32] [--memory-photos 0]
                                     [--clip FILE] [--clip-height N] [--no-clip] [--device auto]

Uses only what every version of the pipeline has, so the same script times an older checkout
(PYTHONPATH=that/checkout python scripts/bench_pipeline.py) for before and after figures in one sitting.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

import numpy as np

from backend.io.face_result import write_result
from backend.io.gltf import write_glb
from backend.io.images import find_photos
from backend.reconstruct.batch import reconstruct_batch, write_outputs
from backend.reconstruct.pipeline import ReconstructOptions, Reconstructor

STAGES = ("detect", "network", "fit", "texture", "npz", "glb", "files")


def resident_mb() -> float:
    """This process's resident memory now, MB (Linux /proc; NaN elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return float("nan")
    return pages * resource.getpagesize() / 2**20


def per_photo(rec: Reconstructor, photos: list[Path], out: Path) -> None:
    rec.reconstruct(photos[0])  # warm-up: first calls pay one-off costs
    print(f"{'photo':18s}" + "".join(f"{s:>9s}" for s in STAGES) + f"{'total':>9s}")
    rows = []
    for photo in photos:
        result = rec.reconstruct(photo)[0]
        s = result.meta["seconds"]
        row = [s["detect"], s["network"], s["fit"], s["texture"]]
        for write, args in ((write_result, (out / "a.npz", result)), (write_glb, (result, out / "a.glb")),
                            (write_outputs, (result, out, "b", ["npz", "glb"]))):
            start = time.perf_counter()
            write(*args)
            row.append(time.perf_counter() - start)
        rows.append(row)
        total = sum(row[:4]) + row[-1]
        print(f"{photo.name[:18]:18s}" + "".join(f"{v:8.3f}s" for v in row) + f"{total:8.3f}s")
    rows = np.array(rows)
    print(f"{'median':18s}" + "".join(f"{v:8.3f}s" for v in np.median(rows, 0)) +
          f"{float(np.median(rows[:, :4].sum(1) + rows[:, -1])):8.3f}s  (all in: detect to files, "
          f"texture {rec.options.texture_size})")


def batch(rec: Reconstructor, photos: list[Path], out: Path, track_memory: bool = False) -> None:
    start, faces, memory = time.perf_counter(), 0, []
    for event in reconstruct_batch(rec, photos, out, ["npz", "glb"]):
        if event["event"] == "result":
            faces += 1
            memory.append(resident_mb())
        elif event["event"] == "error":
            print(f"  {Path(event['photo']).name}: {event['message']}")
    seconds = time.perf_counter() - start
    print(f"batch of {len(photos)} photos ({faces} faces) into npz + glb: {seconds:.1f} s, "
          f"{len(photos) / seconds:.2f} photos/s")
    if track_memory and memory:
        marks = sorted({max(0, round(f * len(memory)) - 1) for f in (0.05, 0.25, 0.5, 0.75, 1.0)})
        print("resident memory through the batch: " +
              ", ".join(f"after {i + 1}: {memory[i]:.0f} MB" for i in marks))


def clip(rec: Reconstructor, path: Path | None, out: Path, height: int = 0) -> None:
    from backend.clip.animate import AnimateOptions, animate

    if path is None:
        from backend.clip.synthetic_clip import FPS, render_clip, truth_curves
        from backend.clip.video import write_video
        from backend.model.albedo_model import AlbedoModel

        truth = truth_curves([str(n) for n in rec.data.expression_names])
        frames = render_clip(rec.data, AlbedoModel.load(), truth)
        if height:
            from PIL import Image

            wide = np.full((len(frames), height, height * 16 // 9 // 2 * 2, 3), 96, np.uint8)
            x0 = (wide.shape[2] - height) // 2
            for i, f in enumerate(frames):
                wide[i, :, x0:x0 + height] = np.asarray(Image.fromarray(f).resize((height, height), Image.BICUBIC))
            frames = wide
        path = write_video(frames, out / "clip.mp4", FPS)
    start = time.perf_counter()
    _, _, report = animate(rec, path, AnimateOptions())
    seconds = time.perf_counter() - start
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in report["seconds"].items())
    print(f"clip {path.name}: {report['frames']} frames in {seconds:.1f} s ({stages}): "
          f"{report['frames'] / seconds:.2f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", default=["../shared/data/faces"])
    parser.add_argument("--batch-folder", default="../shared/data/aflw2000-3d-dev")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--memory-photos", type=int, default=0)
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--clip-height", type=int, default=0)
    parser.add_argument("--no-clip", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    start = time.perf_counter()
    rec = Reconstructor(ReconstructOptions(device=args.device))
    import torch

    print(f"models loaded in {time.perf_counter() - start:.1f} s; device {rec.device}, {torch.get_num_threads()} "
          f"threads; defaults: fit steps {rec.options.fit_steps}, texture {rec.options.texture_size}, network "
          f"{rec.weights.name if rec.weights else 'none'}")
    folder = find_photos([args.batch_folder])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        per_photo(rec, find_photos(args.photos), out)
        batch(rec, folder[:args.batch], out)
        if args.memory_photos:
            batch(rec, list(islice(cycle(folder), args.memory_photos)), out, track_memory=True)
        if not args.no_clip:
            clip(rec, args.clip, out, args.clip_height)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
