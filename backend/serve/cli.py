"""The `mlaface` command line.

    mlaface model install --from PATH | --download [--url URL] [-o FILE]
    mlaface model info [--model FILE]
    mlaface landmarks PHOTOS... [--provider auto|dlib|fan] [--largest] [-o OUT.json]
    mlaface reconstruct PHOTOS... -o OUTDIR [--device auto|cpu|cuda] [--fit-steps N] [--texture-size N]
                        [--formats npz,obj,glb,overlay] [--all-faces] [--same-person]
    mlaface animate CLIP -o OUTDIR [--fps N] [--smooth S] [--start N] [--end N] [--step N]
    mlaface worker [--device ...]      (JSON lines on stdin/stdout, for the Blender add-on)
    mlaface train --config NAME --out DIR [--resume]      (from training/, when installed)
    mlaface evaluate aflw2000 DIR [--weights FILE] [-o OUTDIR]

Problems the user can fix print one `mlaface: error: ...` line and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..io.errors import MlafaceError, OptionError
from ..reconstruct.options import FIT_STEPS

PLUGIN_GROUP = "mlaface.commands"


def _progress(done: int, total: int | None) -> None:
    size = f"{done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else "")
    print(f"\rdownloading {size}", end="", file=sys.stderr, flush=True)


def cmd_model_install(args: argparse.Namespace) -> None:
    from ..model.store import ICT_FACEKIT_DIGEST, download_model, install_model

    start = time.perf_counter()
    if args.download:
        path = download_model(args.url, ICT_FACEKIT_DIGEST, args.output, progress=_progress)
        print(file=sys.stderr)
    else:
        path = install_model(args.source, args.output)
    size = Path(path).stat().st_size / 1e6
    print(f"installed face model: {path} ({size:.1f} MB, {time.perf_counter() - start:.1f} s)")


def cmd_model_info(args: argparse.Namespace) -> None:
    from ..io.model_file import FORMAT_VERSION, read_model
    from ..model.store import resolve_model_path

    path = resolve_model_path(args.model)
    data = read_model(path)
    sizes = data.polygon_sizes
    print(f"face model:     {path} ({path.stat().st_size / 1e6:.1f} MB, format {FORMAT_VERSION})")
    print(f"source:         {data.source}")
    print(f"vertices:       {data.n_vertices:,}")
    print(f"polygons:       {len(sizes):,} ({int(np.sum(sizes == 4)):,} quads, {int(np.sum(sizes == 3)):,} "
          f"triangles); {len(data.triangles):,} triangles for rendering")
    print(f"identity modes: {len(data.identity_basis)}")
    print(f"expressions:    {len(data.expression_basis)} (ARKit names)")
    print(f"landmarks:      {len(data.landmarks_ibug68)} iBUG, {len(data.landmarks_aflw21)} AFLW")
    print(f"face region:    {len(data.face_region):,} vertices")
    parts = zip(data.material_names, data.material_parts, strict=True)
    print("materials:      " + ", ".join(f"{name} ({part})" for name, part in parts))
    print("units and axes: metres; +x subject's left, +y up, +z out of the face")
    from ..model.store import find_network_weights
    from ..network.complexity import describe
    from ..network.config import VARIANTS

    print("networks (weights: --weights > $MLAFACE_WEIGHTS > shipped > cache; the first variant with weights runs):")
    used = find_network_weights(None, args.weights)
    print(f"  in use: {used if used else 'none (reconstruction fits the face model without a network)'}")
    for name, cfg in VARIANTS.items():
        if name == "mlanet_tiny":
            continue  # for tests only
        weights = find_network_weights(name)
        print(f"  {describe(cfg)}; " + (f"trained weights: {weights}" if weights else "no trained weights"))


def cmd_landmarks(args: argparse.Namespace) -> int:
    import json

    from ..detect.landmarks import detect_faces, get_provider
    from ..io.atomic import write_bytes_atomic
    from ..io.images import find_photos, load_image

    provider = get_provider(args.provider)
    photos = find_photos(args.photos)
    if not photos:
        raise MlafaceError("no photos given (folders are searched for image files, not recursively)")
    results, failed = [], 0
    for path in photos:
        entry: dict = {"path": str(path)}
        try:
            image = load_image(path)
            entry.update(width=image.shape[1], height=image.shape[0], provider=provider.name)
            faces = detect_faces(provider, image, str(path), all_faces=not args.largest)
            entry["faces"] = [{"box": [round(v, 2) for v in f.box], "score": round(f.score, 4),
                               "landmarks68": np.round(f.landmarks, 2).tolist()} for f in faces]
        except MlafaceError as e:
            entry["error"] = str(e)
            failed += 1
            print(f"mlaface: error: {e}", file=sys.stderr)
        results.append(entry)
    doc = {"format": "mlaface.landmarks", "format_version": 1,
           "coordinates": "photo pixels, 0-based, (0, 0) is the centre of the top-left pixel; iBUG 68-point order",
           "photos": results}
    text = json.dumps(doc)
    if args.output:
        write_bytes_atomic(args.output, text.encode())
        print(f"wrote {args.output}: {len(photos) - failed} of {len(photos)} photos", file=sys.stderr)
    else:
        print(text)
    return 1 if failed else 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from ..io.images import check_photo, find_photos
    from ..reconstruct.options import ReconstructOptions, parse_formats

    start = time.perf_counter()
    formats = parse_formats(args.formats)
    options = flag_options(ReconstructOptions, device=args.device, fit_steps=args.fit_steps,
                           texture_size=args.texture_size, provider=args.provider, all_faces=args.all_faces,
                           model=args.model, weights=args.weights)
    photos = find_photos(args.photos)
    if not photos:
        raise MlafaceError("no photos given (folders are searched for image files, not recursively)")
    failures, readable = [], []
    for photo in photos:  # what a photo's header tells is refused at once, before torch and the models load
        try:
            check_photo(photo)
            readable.append(photo)
        except MlafaceError as e:
            failures.append((str(photo), str(e)))
    if failures and (args.same_person or not readable):  # one identity needs every photo; nothing left to do
        raise MlafaceError(failures[0][1] if len(failures) == 1 else
                           f"{len(failures)} of the {len(photos)} photos cannot be read: " +
                           "; ".join(m for _, m in failures))

    from ..reconstruct.batch import prepare_output, reconstruct_batch, worst_fits
    from ..reconstruct.pipeline import Reconstructor

    rec = Reconstructor(options)  # the models load before the output folder is made: a bad one leaves nothing
    created = not Path(args.output).exists()
    folder = prepare_output(args.output)
    print(f"mlaface {__version__}: {len(readable)} photo(s) on {rec.device}, landmarks by {rec.provider.name}, "
          f"network: {rec.weights or 'no trained weights (fitting only)'}", file=sys.stderr)
    results = []
    for event in reconstruct_batch(rec, readable, folder, formats, args.same_person):
        if event["event"] == "progress":
            _progress_bar(event["done"], event["total"], Path(event["photo"]).name, start)
        elif event["event"] == "result":
            results.append(event)
        else:
            failures.append((event["photo"], event["message"]))
    print(file=sys.stderr)
    if created and not any(folder.iterdir()):  # no face anywhere: no empty folder left behind either
        folder.rmdir()
    failed_photos = len({photo for photo, _ in failures})
    print(f"{len(photos) - failed_photos} of {len(photos)} photos reconstructed ({len(results)} faces) into "
          f"{folder} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if len(results) > 1:
        print("least certain fits (FaceResult metadata fit_quality; look at these first):", file=sys.stderr)
        for line in worst_fits(results):
            print(f"  {line}", file=sys.stderr)
    for _, message in failures:
        print(f"mlaface: error: {message}", file=sys.stderr)
    return 1 if failures else 0


def _progress_bar(done: int, total: int, name: str, start: float) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {time.perf_counter() - start:6.1f} s "
          f"{name[:40]:40s}", end="", file=sys.stderr, flush=True)


def cmd_animate(args: argparse.Namespace) -> int:
    from ..clip.animate import AnimateOptions, animate_to_folder
    from ..reconstruct.pipeline import ReconstructOptions, Reconstructor

    options = flag_options(AnimateOptions, fps=args.fps, smooth=args.smooth, start=args.start, end=args.end,
                           step=args.step)
    if not Path(args.clip).exists():  # before the models load
        raise MlafaceError(f"{args.clip}: clip not found")
    start = time.perf_counter()
    rec = Reconstructor(flag_options(ReconstructOptions, device=args.device, provider=args.provider,
                                     model=args.model, weights=args.weights))

    stage_start = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in stage_start:
            if stage_start:
                print(file=sys.stderr)
            stage_start[stage] = time.perf_counter()
        rate = done / max(time.perf_counter() - stage_start[stage], 1e-6)
        _progress_bar(done, total, f"{stage} {rate:5.1f} frames/s", start)

    written, anim, report = animate_to_folder(rec, args.clip, args.output, options, progress)
    print(file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"{report['frames']} frames ({report['tracked']} tracked, {report['carried']} carried) at "
          f"{anim.fps:g} fps in {seconds:.1f} s ({report['frames'] / seconds:.1f} frames/s): "
          + ", ".join(p.name for p in written), file=sys.stderr)
    for first, last in report["lost"]:
        print(f"mlaface: warning: face lost in frames {first}-{last}; bridged by interpolation", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from ..reconstruct.pipeline import ReconstructOptions
    from .worker import serve

    return serve(sys.stdin, sys.stdout, flag_options(ReconstructOptions, device=args.device, provider=args.provider,
                                                     model=args.model, weights=args.weights))


def flag_options(cls, **values):
    """An options dataclass from command-line values; a value out of range is reported as its flag."""
    try:
        return cls(**values)
    except OptionError as e:
        raise e.as_flag() from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlaface", description="Photo to 3D face for Blender.")
    parser.add_argument("--version", action="version", version=f"mlaface {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model = commands.add_parser("model", help="install or inspect the face model (ICT-FaceKit)")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    install = model_commands.add_parser("install", help="convert ICT-FaceKit into the model cache")
    what = install.add_mutually_exclusive_group(required=True)
    what.add_argument("--from", dest="source", metavar="PATH",
                      help="a FaceXModel folder, or a .tar.xz/.zip archive of it")
    what.add_argument("--download", action="store_true",
                      help="download ICT-FaceKit (MIT) at a pinned commit and check it")
    install.add_argument("--url", default=None, help="a mirror of the ICT-FaceKit archive (with --download)")
    install.add_argument("-o", "--output", metavar="FILE", default=None,
                         help="write the model file here instead of the user cache")
    install.set_defaults(func=cmd_model_install)
    info = model_commands.add_parser("info", help="print what the face model holds")
    info.add_argument("--model", metavar="FILE", default=None,
                      help="face model file (default: $MLAFACE_MODEL, then the user cache)")
    info.add_argument("--weights", metavar="FILE", default=None,
                      help="network weights of the default variant (default: $MLAFACE_WEIGHTS, shipped, cache)")
    info.set_defaults(func=cmd_model_info)

    lm = commands.add_parser("landmarks", help="detect faces and their 68 landmarks, as JSON")
    lm.add_argument("photos", nargs="+", metavar="PHOTO", help="image files, folders or glob patterns")
    lm.add_argument("--provider", default="auto", help="auto (best available), dlib or fan")
    lm.add_argument("--largest", action="store_true", help="only the largest face of each photo")
    lm.add_argument("-o", "--output", metavar="OUT.json", help="write here instead of printing")
    lm.set_defaults(func=cmd_landmarks)

    rc = commands.add_parser("reconstruct", help="photos to textured 3D faces (npz, obj, glb, overlay png)")
    rc.add_argument("photos", nargs="+", metavar="PHOTO", help="image files, folders or glob patterns")
    rc.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if missing)")
    rc.add_argument("--fit-steps", type=int, default=FIT_STEPS, help="test-time fitting iterations (0: none)")
    rc.add_argument("--texture-size", type=int, default=1024, help="texture side in pixels, 256-4096")
    rc.add_argument("--formats", default="npz,obj,glb,overlay", help="comma-separated: npz, obj, glb, overlay")
    rc.add_argument("--all-faces", action="store_true", help="every face of a photo, not only the largest")
    rc.add_argument("--same-person", action="store_true",
                    help="the photos show one person: fit one identity, an expression and pose per photo")
    an = commands.add_parser("animate", help="a video or numbered frames to an animated head (glb, Live Link CSV)")
    an.add_argument("clip", metavar="CLIP", help="a video file or a folder of numbered frames")
    an.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if missing)")
    an.add_argument("--fps", type=float, default=None, help="frame rate of a folder of frames (30), or an override")
    an.add_argument("--smooth", type=float, default=0.5, help="temporal smoothing, 0 (off) to 1 (strong)")
    an.add_argument("--start", type=int, default=0, help="first frame number (0-based)")
    an.add_argument("--end", type=int, default=None, help="frame number to stop before")
    an.add_argument("--step", type=int, default=1, help="use every N-th frame")
    an.set_defaults(func=cmd_animate)
    for p in (rc, an, commands.add_parser("worker", help="serve the Blender add-on: JSON lines on stdin/stdout")):
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        p.add_argument("--provider", default="auto", help="landmark provider: auto, dlib or fan")
        p.add_argument("--model", metavar="FILE", default=None, help="face model file")
        p.add_argument("--weights", metavar="FILE", default=None, help="network weights")
    rc.set_defaults(func=cmd_reconstruct)
    commands.choices["worker"].set_defaults(func=cmd_worker)
    add_plugin_commands(commands)
    return parser


def add_plugin_commands(commands) -> None:
    """Commands that other installed packages register in the entry point group "mlaface.commands" (each a
    function given the subparsers): `train` and `evaluate` from training/, without backend importing it."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()(commands)
        except ImportError as e:
            print(f"mlaface: warning: command {ep.name!r} unavailable ({e})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "url", None) and not getattr(args, "download", False):
        parser.error("--url goes with --download")
    if getattr(args, "download", False) and args.url is None:
        from ..model.store import ICT_FACEKIT_URL

        args.url = ICT_FACEKIT_URL
    try:
        status = args.func(args)
    except MlafaceError as e:
        print(f"mlaface: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlaface: interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
