"""A test clip with known curves, made by the project itself: for the tests, `python -m training.clip_eval` and
demos. The whole head of the face model (mean identity and albedo; eyeballs, a lash line, teeth and mouth in plain
colours; soft light; grey background) rendered by render/head.HeadRenderer at 256 x 256, 25 fps, 2 s: a fast
blink of both eyes (5 frames down and up), a jaw opening and closing, and a head turn to 30 degrees of yaw and
back with a small nod. clip/video.write_video encodes it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..io.colour import linear_to_srgb
from ..io.model_file import FaceModelData
from ..model.albedo_model import AlbedoModel
from ..model.face_model import FaceModel
from ..model.pose import euler_to_matrix
from ..render.camera import to_camera
from ..render.head import HeadRenderer
from ..render.shading import ambient_sh

SIZE, FPS, SECONDS = 256, 25.0, 2.0


def truth_curves(names: list[str], n: int = round(FPS * SECONDS)) -> dict[str, np.ndarray]:
    """weights [n, E], yaw / pitch [n] radians, times [n] seconds."""
    t = np.arange(n) / FPS
    w = np.zeros((n, len(names)), np.float32)
    blink = np.clip(1 - np.abs(np.arange(n) - 12) / 3.0, 0, 1)  # frames 9-15, shut at 12
    w[:, names.index("eyeBlinkLeft")] = w[:, names.index("eyeBlinkRight")] = blink
    w[:, names.index("jawOpen")] = 0.7 * np.clip(np.sin(np.pi * (t - 0.7) / 0.8), 0, None) * ((t > 0.7) & (t < 1.5))
    yaw = np.radians(30) * np.sin(np.pi * t / SECONDS) ** 2
    pitch = np.radians(8) * np.sin(2 * np.pi * t / SECONDS)
    return {"times": t, "weights": w, "yaw": yaw, "pitch": pitch}


@torch.no_grad()
def render_clip(data: FaceModelData, albedo: AlbedoModel, truth: dict) -> np.ndarray:
    """data: the face model file's contents -> frames [n, SIZE, SIZE, 3] uint8."""
    model = FaceModel.from_data(data)
    renderer = HeadRenderer(data)
    n = len(truth["times"])
    w = torch.from_numpy(truth["weights"])
    rot = euler_to_matrix(torch.from_numpy(truth["pitch"]).float(), torch.from_numpy(truth["yaw"]).float(),
                          torch.zeros(n))
    verts = to_camera(model.vertices(torch.zeros(n, model.n_identity), w), rot,
                      torch.tensor([0, 0.02, -0.6]).expand(n, 3))
    sh = ambient_sh(0.9, n).view(n, 3, 9)
    sh[:, :, 1], sh[:, :, 3] = 0.3, 0.2
    image, mask = renderer.render(verts, torch.full((n,), SIZE * 2.0), albedo(torch.zeros(n, albedo.n_components)),
                                  sh.view(n, 27), SIZE)
    out = torch.where(mask[:, None], linear_to_srgb(image), torch.full_like(image, 0.35))
    return (out.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
