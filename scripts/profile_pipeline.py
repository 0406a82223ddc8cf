"""Where one photo's time goes: cProfile over each stage of `mlaface reconstruct` (loading, detection, network,
fitting, texture, each export format), the top functions of each by cumulative time; with --clip, over
`mlaface animate` on a clip (tracking, identity keyframes, landmark fit, pixel reading), by internal time.

    python scripts/profile_pipeline.py [PHOTO] [--top 12] [--fit-steps 150] [--texture-size 1024] [--clip FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

from backend.clip.animate import animate
from backend.io.face_result import write_result
from backend.io.gltf import write_glb
from backend.io.images import load_image
from backend.io.obj import write_obj
from backend.reconstruct.pipeline import ReconstructOptions, Reconstructor
from backend.render.overlay import write_overlay


def profiled(name: str, top: int, fn, *args, sort: str = "cumulative", **kwargs):
    """Run fn under cProfile; print its wall time and the `top` functions by `sort`; -> fn's result."""
    prof = cProfile.Profile()
    start = time.perf_counter()
    result = prof.runcall(fn, *args, **kwargs)
    seconds = time.perf_counter() - start
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats(sort).print_stats(top)
    lines = [ln for ln in text.getvalue().splitlines() if ln.strip()]
    table = lines[next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")):]
    print(f"\n== {name}: {seconds:.3f} s")
    print("\n".join(table))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", default="../shared/data/faces/einstein.jpg")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--fit-steps", type=int, default=ReconstructOptions.fit_steps)
    parser.add_argument("--texture-size", type=int, default=ReconstructOptions.texture_size)
    parser.add_argument("--clip", help="profile `mlaface animate` on this clip instead")
    args = parser.parse_args()
    options = ReconstructOptions(fit_steps=args.fit_steps, texture_size=args.texture_size)
    rec = profiled("load models", args.top, Reconstructor, options)
    if args.clip:
        _, _, report = profiled(f"animate {args.clip}", args.top, animate, rec, args.clip, sort="tottime")
        print({stage: round(s, 2) for stage, s in report["seconds"].items()}, f"{report['frames']} frames")
        return
    rec.reconstruct(args.photo)  # warm-up: first calls pay one-off costs (allocators, caches)
    image, faces = profiled("load + detect", args.top, rec.detect, args.photo)
    seconds: dict = {}
    fitted, blends = profiled("network + fit", args.top, rec.fit_faces, [image], faces[:1], False, None, None,
                              seconds)
    print(f"(network {seconds['network']:.3f} s, fit {seconds['fit']:.3f} s)")
    result = profiled("texture + result", args.top, rec.face_result, fitted, blends[0], 0, image, faces[0],
                      args.photo, 0, False, seconds)
    with tempfile.TemporaryDirectory() as out:
        folder = Path(out)
        profiled("write npz", args.top, write_result, folder / "a.npz", result)
        profiled("write obj + mtl + texture", args.top, write_obj, result, folder / "a.obj")
        profiled("write glb", args.top, write_glb, result, folder / "a.glb")
        profiled("write overlay", args.top, write_overlay, result, load_image(args.photo), folder / "a.png")


if __name__ == "__main__":
    main()
