"""Install the built add-on into a throw-away Blender profile (bpy), reconstruct a photo with its operator through
the worker, render the imported head from the matched camera with Cycles on the CPU, and write the render beside
the photo to a PNG; print the time of the whole operator and of building the Blender data alone.

    python scripts/blender_render_import.py PHOTO [--model FILE] [-o docs/blender_import.png]
(docs/blender_import.png shows scikit-image's astronaut, a public-domain photo.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="mlaface-blender-"))

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from build_addon import build  # noqa: E402

ADDON = "bl_ext.user_default.mlaface"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("--model", default="")
    parser.add_argument("-o", "--output", default="docs/blender_import.png")
    args = parser.parse_args()
    photo = Path(args.photo).resolve()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    zip_path = build(Path(tempfile.mkdtemp()))
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.python_path, prefs.model_path, prefs.device = sys.executable, args.model, "cpu"
    start = time.perf_counter()
    bpy.ops.mlaface.reconstruct(filepath=str(photo))
    total = time.perf_counter() - start
    head = bpy.data.objects[photo.stem]

    # building the Blender data alone, from the FaceResult the worker wrote
    importer = sys.modules[f"{ADDON}.importer"]
    face_result = sys.modules[f"{ADDON}.backend.face_result"]
    npz = next(Path(tempfile.gettempdir()).glob(f"mlaface-*/{photo.stem}.npz"))
    start = time.perf_counter()
    importer.import_results([face_result.read_result(npz)], ["timing"], "timing", with_camera=False, grid=True)
    build_s = time.perf_counter() - start
    print(f"operator (worker reconstruct + import): {total:.1f} s; building the Blender data: {build_s:.2f} s/face")
    bpy.data.collections.remove(bpy.data.collections["timing"])

    scene = bpy.context.scene
    scene.camera = bpy.data.objects[f"{photo.stem}_camera"]
    W, H = scene.camera["mlaface_resolution"]
    k = 512 / max(W, H)
    scene.render.resolution_x, scene.render.resolution_y = round(W * k), round(H * k)
    scene.render.engine, scene.cycles.device, scene.cycles.samples = "CYCLES", "CPU", 32
    scene.world = bpy.data.worlds.new("mlaface")
    scene.world.use_nodes = True
    scene.world.node_tree.nodes["Background"].inputs[0].default_value = (0.9, 0.9, 0.9, 1.0)  # soft white light
    scene.render.film_transparent = True
    out = Path(tempfile.mkdtemp()) / "render.png"
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)
    render = Image.open(out).convert("RGBA")
    picture = Image.open(photo).convert("RGB").resize(render.size)
    over = Image.alpha_composite(picture.convert("RGBA"), render).convert("RGB")
    sheet = Image.new("RGB", (render.width * 3, render.height), "white")
    for i, im in enumerate((picture, Image.alpha_composite(Image.new("RGBA", render.size, (60, 60, 60, 255)),
                                                          render).convert("RGB"), over)):
        sheet.paste(im, (i * render.width, 0))
    sheet.save(args.output)
    print(f"wrote {args.output}: photo | Cycles render from the matched camera | render over the photo;",
          f"{len(head.data.shape_keys.key_blocks) - 1} shape keys", np.round(head.location[:], 3))


if __name__ == "__main__":
    main()
