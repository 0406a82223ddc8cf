"""A new user's setup, measured: install the built zip into a throw-away Blender profile (bpy, headless), press
Install Backend with the default settings (from the package index, online access allowed), install the face model
from a file (or --download it), reconstruct a photo through the worker of that environment, render it with Cycles
on the CPU, and print the install's time and the environment's size on disk.

    python scripts/blender_setup_from_index.py PHOTO --model-archive FaceXModel.tar.xz [-o docs/blender_setup.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blender_render_import import ADDON, bpy, build, render_camera, sheet_row
from PIL import Image


def disk_mb(folder: Path) -> float:
    out = subprocess.run(["du", "-sk", str(folder)], capture_output=True, text=True).stdout.split()
    return int(out[0]) / 1024 if out else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("--model-archive", type=Path, help="ICT-FaceKit archive; without it: Download Face Model")
    parser.add_argument("--torch", default="auto", choices=["auto", "cpu", "cuda", "pypi"])
    parser.add_argument("-o", "--output", default="docs/blender_setup.png")
    args = parser.parse_args()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(build(Path(tempfile.mkdtemp()))), repo="user_default",
                                             enable_on_install=True)
    bpy.context.preferences.system.use_online_access = True
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.torch_build, prefs.device = args.torch, "cpu"
    session = sys.modules[f"{ADDON}.session"]
    folder = session.user_folder()
    start = time.perf_counter()
    result = bpy.ops.mlaface.install_backend()
    install_s = time.perf_counter() - start
    print(f"Install Backend: {result} in {install_s:.0f} s; environment {disk_mb(folder / 'backend-env'):.0f} MB; "
          f"{session.backend_state(prefs)[1]}")
    start = time.perf_counter()
    if args.model_archive:
        bpy.ops.mlaface.install_model_file(filepath=str(args.model_archive.resolve()))
    else:
        bpy.ops.mlaface.download_model()
    print(f"face model: {time.perf_counter() - start:.0f} s; {session.model_state(prefs)[1]}")
    start = time.perf_counter()
    bpy.ops.mlaface.reconstruct(filepath=str(args.photo.resolve()))
    print(f"Reconstruct Photo (first, the worker starting): {time.perf_counter() - start:.1f} s; "
          f"{session.STATUS['text']}")
    render = render_camera(f"{args.photo.stem}_camera")
    sheet_row(Image.open(args.photo).convert("RGB"), render).save(args.output)
    print(f"wrote {args.output}; the log: {folder / 'install.log'}")
    bpy.ops.mlaface.uninstall_backend()


if __name__ == "__main__":
    main()
