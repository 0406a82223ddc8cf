"""A 3D shape benchmark that runs here: ICT-FaceKit faces rendered by the training renderer (training/synthetic.py)
from a held-out seed, each saved as a photo and as a "scan" of its neutral face with NoW's 7 landmarks, listed in
a manifest for `mlaface evaluate scans`.

    python -m training.synthetic_scans -o runs/synthetic-scans --count 300

Each face: identity, expression, head pose and light drawn as the training faces are, from SEED (no training run
uses it), on a background from the last 500 AFLW crops (the training's validation crops, held out from its
training steps); the photo PHOTO_SIZE pixels square. The scan is the face's neutral surface (skin and eyeballs)
in millimetres, triangulated as the model is: it measures our own shape space only, not how close a real head
lies to it. The folder holds AFLW-derived photos (research use only): keep it outside the repository.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from backend.io.atomic import write_bytes_atomic
from backend.io.images import png_bytes
from backend.io.model_file import read_model
from backend.model.albedo_model import AlbedoModel
from backend.model.face_model import FaceModel
from backend.model.store import resolve_model_path

from .scan_eval import shape_surface
from .synthetic import SyntheticFaces

SEED = 190_019
PHOTO_SIZE = 320
HELD_OUT_CROPS = 500


def backgrounds(crops: Path) -> torch.Tensor:
    """[N, 3, 120, 120] uint8: the last HELD_OUT_CROPS AFLW crops."""
    with np.load(crops / "annotations.npz") as a:
        names = a["names"][-HELD_OUT_CROPS:]
    images = [np.asarray(Image.open(crops / "images" / str(n)).convert("RGB").resize((120, 120))) for n in names]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def obj_text(vertices: np.ndarray, triangles: np.ndarray) -> str:
    lines = [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in triangles]
    return "\n".join(lines) + "\n"


def make_benchmark(out: Path, count: int, crops: Path | None, model: str | None = None, seed: int = SEED) -> Path:
    """Write count faces and out/manifest.json; -> the manifest."""
    data = read_model(resolve_model_path(model))
    full = FaceModel.from_data(data)
    synth = SyntheticFaces(full.face_subset(), AlbedoModel.load(), PHOTO_SIZE,
                           backgrounds(crops) if crops is not None else None)
    tris, marks = shape_surface(data)
    used = np.unique(tris)
    remap = np.full(len(data.mean), -1, np.int64)
    remap[used] = np.arange(len(used))
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    cases = []
    for start in range(0, count, 16):
        batch = synth.sample(min(16, count - start), g)
        neutral = full.vertices(batch["identity"], torch.zeros(len(batch["identity"]), full.n_expression))
        for j in range(len(batch["identity"])):
            name = f"face_{start + j:04d}"
            image = (batch["image"][j].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            write_bytes_atomic(out / f"{name}.png", png_bytes(image))
            verts = neutral[j].numpy().astype(np.float64) * 1000
            write_bytes_atomic(out / f"{name}_scan.obj", obj_text(verts[used], remap[tris]).encode())
            cases.append({"subject": name, "photos": [f"{name}.png"], "scan": f"{name}_scan.obj",
                          "landmarks": np.round(verts[marks], 4).tolist(), "name": name})
    manifest = out / "manifest.json"
    write_bytes_atomic(manifest, json.dumps({"units": "mm", "seed": seed, "cases": cases}, indent=1).encode())
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True, help="the benchmark folder (outside the repo)")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--crops", type=Path, default=Path("../shared/data/aflw-crops"),
                        help="the AFLW crops for backgrounds (absent: smooth noise)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    crops = args.crops if (args.crops / "annotations.npz").is_file() else None
    print(f"wrote {make_benchmark(args.output, args.count, crops, args.model, args.seed)}: {args.count} faces")


if __name__ == "__main__":
    main()
