"""Install the built add-on into a throw-away Blender profile (bpy), reconstruct a photo with its operator through
the worker, render the imported head from the matched camera with Cycles on the CPU, and write the render beside
the photo to a PNG; print the time of the whole operator and of building the Blender data alone.

    python scripts/blender_render_import.py PHOTO [--model FILE] [-o docs/blender_import.png]
    python scripts/blender_render_import.py CLIP --frames 1,13,28 [-o docs/blender_clip.png]
    python scripts/blender_render_import.py HEAD.glb [-o docs/astronaut_glb_blender.png]
    python scripts/blender_render_import.py PHOTO [PHOTO ...] --views [-o docs/blender_views.png]

With --frames the input is a clip: "Animate from Video" imports it, and each listed scene frame is rendered (a row:
clip frame | render | render over the frame). A .glb (from `mlaface reconstruct`) is imported with Blender's own
glTF importer and rendered from three-quarters. With --views each photo is a row: photo | render from the matched
camera | three-quarters from the side the photo does not show | the back of the head.
(docs/blender_import.png shows scikit-image's astronaut, a public-domain photo; docs/blender_clip.png the
project's own test clip, `python -m training.clip_eval`.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="mlaface-blender-"))

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Vector  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from build_addon import build  # noqa: E402

ADDON = "bl_ext.user_default.mlaface"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="+")
    parser.add_argument("--model", default="")
    parser.add_argument("--frames", help="a clip: the scene frames to render, comma-separated")
    parser.add_argument("--views", action="store_true", help="each photo's head from its camera, the hidden side "
                        "and the back")
    parser.add_argument("-o", "--output", default="docs/blender_import.png")
    args = parser.parse_args()
    photo = Path(args.photo[0]).resolve()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    zip_path = build(Path(tempfile.mkdtemp()))
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.python_path, prefs.model_path, prefs.device = sys.executable, args.model, "cpu"
    if args.views:
        return render_views([Path(p).resolve() for p in args.photo], Path(args.output))
    if args.frames:
        return render_clip(photo, [int(f) for f in args.frames.split(",")], Path(args.output))
    if photo.suffix == ".glb":
        return render_glb(photo, Path(args.output))
    start = time.perf_counter()
    bpy.ops.mlaface.reconstruct(filepath=str(photo))
    total = time.perf_counter() - start
    head = bpy.data.objects[photo.stem]

    # building the Blender data alone, from a FaceResult the command line writes (the operator's is removed)
    importer = sys.modules[f"{ADDON}.importer"]
    face_result = sys.modules[f"{ADDON}.backend.io.face_result"]
    folder = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "backend", "reconstruct", str(photo), "-o", str(folder), "--formats", "npz",
                    *(["--model", args.model] if args.model else [])], check=True, capture_output=True)
    npz = folder / f"{photo.stem}.npz"
    start = time.perf_counter()
    importer.import_results([face_result.read_result(npz)], ["timing"], "timing", with_camera=False, grid=True)
    build_s = time.perf_counter() - start
    print(f"operator (worker reconstruct + import): {total:.1f} s; building the Blender data: {build_s:.2f} s/face")
    bpy.data.collections.remove(bpy.data.collections["timing"])

    render = render_camera(f"{photo.stem}_camera")
    sheet_row(Image.open(photo).convert("RGB"), render).save(args.output)
    print(f"wrote {args.output}: photo | Cycles render from the matched camera | render over the photo;",
          f"{len(head.data.shape_keys.key_blocks) - 1} shape keys", np.round(head.location[:], 3))


def render_glb(glb: Path, output: Path) -> None:
    """The .glb through Blender's glTF importer, from three-quarters, on dark grey."""
    bpy.ops.import_scene.gltf(filepath=str(glb))
    head = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    centre = sum((head.matrix_world @ Vector(c) for c in head.bound_box), Vector()) / 8
    camera = bpy.data.objects.new("glb_camera", bpy.data.cameras.new("glb_camera"))
    bpy.context.scene.collection.objects.link(camera)
    camera.data.lens = 85
    camera.location = centre + Vector((-0.42, -0.9, 0.08))  # glTF's +z (the face) is Blender's -y
    camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
    camera["mlaface_resolution"] = (400, 400)
    render = render_camera("glb_camera", side=400)
    Image.alpha_composite(Image.new("RGBA", render.size, (30, 30, 30, 255)), render).convert("RGB").save(output)
    print(f"wrote {output}: {glb.name} through Blender's glTF importer, Cycles")


def render_views(photos: list[Path], output: Path, side: int = 320) -> None:
    """A row per photo: photo | render from its camera | three-quarters from the hidden side | back, on grey."""
    rows = []
    for photo in photos:
        bpy.ops.mlaface.reconstruct(filepath=str(photo))
        head = bpy.data.objects[photo.stem]
        to_world = head.matrix_world.to_3x3().normalized()
        centre = head.matrix_world @ (sum((Vector(c) for c in head.bound_box), Vector()) / 8)
        front, up = to_world @ Vector((0, -1, 0)), to_world @ Vector((0, 0, 1))  # the mesh is z-up, facing -y
        left = up.cross(front)  # the subject's left
        seen = 1 if left.dot(bpy.data.objects[f"{photo.stem}_camera"].location - centre) > 0 else -1
        render = render_camera(f"{photo.stem}_camera", side=3 * side)  # the photo's framing, cropped to the head
        box = _grown(render.getchannel("A").getbbox(), 0.15, render.size)
        picture = Image.open(photo).convert("RGB").resize(render.size).crop(box)
        cells = [picture, _on_grey(render.crop(box))]
        for name, direction in (("hidden", (front - seen * left).normalized()), ("back", -front)):
            camera = bpy.data.objects.new(f"{photo.stem}_{name}", bpy.data.cameras.new(f"{photo.stem}_{name}"))
            bpy.context.scene.collection.objects.link(camera)
            camera.data.lens = 85
            camera.location = centre + 1.0 * direction
            camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
            camera["mlaface_resolution"] = (side, side)
            cells.append(_on_grey(render_camera(camera.name, side=side)))
        for obj in bpy.context.scene.objects:
            obj.hide_render = True  # the next photo's head alone
        rows.append(cells)
    sheet = Image.new("RGB", (4 * side, side * len(rows)), "white")
    for r, cells in enumerate(rows):
        for c, im in enumerate(cells):
            im = ImageOps.contain(im, (side, side))
            sheet.paste(im, (c * side + (side - im.width) // 2, r * side + (side - im.height) // 2))
    sheet.save(output)
    print(f"wrote {output}: photo | from its camera | three-quarters from the hidden side | back; {len(rows)} photos")


def _grown(box: tuple[int, int, int, int], margin: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A square box around `box` (left, top, right, bottom), `margin` of its side larger each way, inside size."""
    cx, cy, half = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, max(box[2] - box[0], box[3] - box[1]) / 2
    half *= 1 + margin
    return (max(0, round(cx - half)), max(0, round(cy - half)), min(size[0], round(cx + half)),
            min(size[1], round(cy + half)))


def _on_grey(render: Image.Image) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", render.size, (60, 60, 60, 255)), render).convert("RGB")


def render_camera(camera: str, side: int = 512) -> Image.Image:
    """The scene from the named camera (with an mlaface_resolution) with Cycles on the CPU, soft white light,
    transparent film."""
    scene = bpy.context.scene
    scene.camera = bpy.data.objects[camera]
    W, H = scene.camera["mlaface_resolution"]
    k = side / max(W, H)
    scene.render.resolution_x, scene.render.resolution_y = round(W * k), round(H * k)
    scene.render.engine, scene.cycles.device, scene.cycles.samples = "CYCLES", "CPU", 32
    if scene.world is None:
        scene.world = bpy.data.worlds.new("mlaface")
        scene.world.use_nodes = True
        scene.world.node_tree.nodes["Background"].inputs[0].default_value = (0.9, 0.9, 0.9, 1.0)
    scene.render.film_transparent = True
    out = Path(tempfile.mkdtemp()) / "render.png"
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)
    return Image.open(out).convert("RGBA")


def sheet_row(picture: Image.Image, render: Image.Image) -> Image.Image:
    """picture | render on grey | render over the picture."""
    picture = picture.resize(render.size)
    grey = Image.alpha_composite(Image.new("RGBA", render.size, (60, 60, 60, 255)), render).convert("RGB")
    over = Image.alpha_composite(picture.convert("RGBA"), render).convert("RGB")
    row = Image.new("RGB", (render.width * 3, render.height), "white")
    for i, im in enumerate((picture, grey, over)):
        row.paste(im, (i * render.width, 0))
    return row


def render_clip(clip: Path, frames: list[int], output: Path) -> None:
    """Animate the clip with the add-on's operator; one sheet row per scene frame."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from backend.clip.video import open_clip

    start = time.perf_counter()
    bpy.ops.mlaface.animate_clip(filepath=str(clip), smooth=0.5)
    print(f"operator (worker animate + import): {time.perf_counter() - start:.1f} s")
    scene = bpy.context.scene
    images = {f.index: f.image for f in open_clip(clip)[1]}
    rows = []
    for frame in frames:
        scene.frame_set(frame)
        head = bpy.data.objects[clip.stem]
        keys = {k.name: round(k.value, 2) for k in head.data.shape_keys.key_blocks[1:] if k.value > 0.2}
        print(f"frame {frame}: shape keys above 0.2 {keys}")
        rows.append(sheet_row(Image.fromarray(images[frame - scene.frame_start]),
                              render_camera(f"{clip.stem}_camera", side=256)))
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    for i, row in enumerate(rows):
        sheet.paste(row, (0, i * row.height))
    sheet.save(output)
    print(f"wrote {output}: clip frame | Cycles render of the animated head | render over the frame; frames {frames}")


if __name__ == "__main__":
    main()
