"""A clip applied to a second, differently shaped ARKit head, in Blender through the add-on (bpy, headless):
render the project's test clip (backend/clip/synthetic_clip.py), animate the mlaface head from it (`mlaface
animate`, imported by the add-on's Animate from Video importer), build a character of another identity whose
shape keys are spelled `Blendshape.eye_blink_L` (browInnerUp and cheekPuff whole), key the clip's track onto it
with Apply to Selected (with the head rotation), and render listed frames with Cycles on the CPU: clip frame |
the mlaface head | the character.

    python scripts/blender_drive_character.py [--model FILE] [--frames 1,12,28] [-o docs/drive_character.png]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from blender_render_import import ADDON, bpy, build, render_camera
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.clip.synthetic_clip import FPS, render_clip, truth_curves  # noqa: E402
from backend.clip.video import write_video  # noqa: E402
from backend.io.animation import read_track  # noqa: E402
from backend.io.face_result import read_result  # noqa: E402
from backend.io.model_file import read_model  # noqa: E402
from backend.model.albedo_model import AlbedoModel  # noqa: E402
from backend.model.store import resolve_model_path  # noqa: E402
from backend.rig.names import SIDES, SPLIT_SHAPES  # noqa: E402


def rig_spelling(name: str) -> str:
    """eyeBlinkLeft -> Blendshape.eye_blink_L: another rig's way of naming ARKit's shapes."""
    side = next((s for s in SIDES if name.endswith(s) and name != "mouth" + s and name != "jaw" + s), "")
    words = re.findall(r"[A-Z]?[a-z]+", name[: len(name) - len(side)] if side else name)
    return "Blendshape." + "_".join(w.lower() for w in words) + (f"_{side[0]}" if side else "")


def character(head, data, seed: int = 7):
    """The clip's head as another person: a different identity (the model's modes at a fixed seed), the split
    shapes folded into ARKit's whole ones, every key renamed in rig_spelling."""
    g = np.random.default_rng(seed)
    coeffs = g.normal(0, 1.2, len(data.identity_basis))
    coeffs[:3] = (2.5, -2.0, 1.5)
    vertices = data.mean + np.tensordot(coeffs, data.identity_basis, 1)
    names, deltas = [], []
    for name, delta in zip(head.expression_names, head.expression_deltas, strict=True):
        whole = next((s for s in SPLIT_SHAPES if name.startswith(s)), None)
        if whole is not None and whole in names:
            deltas[names.index(whole)] = deltas[names.index(whole)] + delta
            continue
        names.append(whole or str(name))
        deltas.append(delta)
    return replace(head, vertices=vertices.astype(np.float32), expression_names=np.array([rig_spelling(n)
                   for n in names]), expression_deltas=np.stack(deltas), expression_weights=np.zeros(len(names),
                   np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="")
    parser.add_argument("--frames", default="1,12,28")
    parser.add_argument("-o", "--output", default="docs/drive_character.png")
    args = parser.parse_args()
    model = resolve_model_path(args.model or None)
    data = read_model(model)
    truth = truth_curves([str(n) for n in data.expression_names])
    work = Path(tempfile.mkdtemp(prefix="mlaface-drive-"))
    clip = write_video(render_clip(data, AlbedoModel.load(), truth), work / "take.mp4", FPS)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(build(work)), repo="user_default", enable_on_install=True)
    subprocess.run([sys.executable, "-m", "backend", "animate", str(clip), "-o", str(work), "--model", str(model)],
                   check=True, capture_output=True)
    anim = work / "take_anim.npz"
    importer = sys.modules[f"{ADDON}.importer"]
    importer.import_animation(read_result(work / "take.npz"), read_track(anim), "take")  # Animate from Video's import

    collection = bpy.data.collections.new("character")
    bpy.context.scene.collection.children.link(collection)
    rig = importer.build_head(character(read_result(anim.with_name("take.npz")), data), "character", collection,
                              importer.Created(), posed=False)
    rig.location = (3.0, 0.0, 0.0)
    clay = bpy.data.materials.new("character clay")
    clay.use_nodes = True
    clay.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.42, 0.55, 0.75, 1.0)
    for slot in rig.material_slots:  # the skin (face and back of the head) in another colour
        if slot.material.name.startswith(("mlaface_M_Face", "mlaface_M_BackHead")):
            slot.material = clay
    camera = bpy.data.objects.new("character_camera", bpy.data.cameras.new("character_camera"))
    collection.objects.link(camera)
    camera.data.lens = 85
    camera.location, camera.rotation_euler = (3.0, -0.75, 0.02), (np.pi / 2, 0, 0)
    camera["mlaface_resolution"] = (256, 256)

    settings = bpy.context.scene.mlaface_drive
    settings.source, settings.filepath, settings.head_object = "TRACK", str(anim), rig
    for o in bpy.context.view_layer.objects:
        o.select_set(o == rig)
    bpy.context.view_layer.objects.active = rig
    start = time.perf_counter()
    bpy.ops.mlaface.apply_to_selected()
    print(f"Apply to Selected: {time.perf_counter() - start:.2f} s for {len(truth['times'])} frames")
    unmatched = rig.mlaface_unmatched_targets
    print(f"character's keys not driven: {unmatched or 'none'}; the track's names unused: "
          f"{rig.mlaface_unmatched_sources or 'none'}")

    scene = bpy.context.scene
    from backend.clip.video import open_clip

    images = {f.index: f.image for f in open_clip(clip)[1]}
    rows = []
    for frame in (int(f) for f in args.frames.split(",")):
        scene.frame_set(frame)
        keys = {k.name: round(k.value, 2) for k in rig.data.shape_keys.key_blocks[1:] if k.value > 0.2}
        print(f"frame {frame}: character's keys above 0.2 {keys}")
        head = render_camera("take_camera", side=256)
        char = render_camera("character_camera", side=256)
        row = Image.new("RGB", (256 * 3, 256), "white")
        row.paste(Image.fromarray(images[frame - scene.frame_start]).resize((256, 256)), (0, 0))
        for i, im in enumerate((head, char), 1):
            row.paste(Image.alpha_composite(Image.new("RGBA", im.size, (60, 60, 60, 255)), im).convert("RGB"),
                      (256 * i, 0))
        rows.append(row)
    sheet = Image.new("RGB", (rows[0].width, 256 * len(rows)), "white")
    for i, row in enumerate(rows):
        sheet.paste(row, (0, 256 * i))
    sheet.save(args.output)
    print(f"wrote {args.output}: clip frame | the mlaface head (Animate from Video) | the character driven by "
          f"Apply to Selected; frames {args.frames}")


if __name__ == "__main__":
    main()
