"""A test clip made by the project itself, and how well `mlaface animate` recovers it.

    python -m training.clip_eval --out runs/clip     # writes clip.mp4, runs animate, prints errors, curves.png

The clip: the whole head of the face model (mean identity and albedo; eyeballs, a lash line, teeth and mouth in
plain colours; soft light; grey background) rendered by our renderer (training/face_render.HeadRenderer) at
256 x 256, 25 fps, 2 s, with known curves: a fast blink of both eyes (5 frames down and up), a jaw opening and
closing, and a head turn to 30 degrees of yaw and back with a small nod. Encoded as H.264 with PyAV.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from backend.model.albedo_model import AlbedoModel
from backend.io.animation import AnimationTrack, head_angles
from backend.model.face_model import FaceModel
from backend.io.model_file import FaceModelData, read_model
from backend.model.store import resolve_model_path
from backend.render.shading import ambient_sh
from backend.reconstruct.texture import linear_to_srgb

from .face_render import HeadRenderer
from .synthetic import euler_to_matrix

SIZE, FPS, SECONDS = 256, 25.0, 2.0
ANIMATED = ("eyeBlinkLeft", "eyeBlinkRight", "jawOpen")


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
    verts = model.vertices(torch.zeros(n, model.n_identity), w) @ rot.transpose(1, 2) + torch.tensor([0, 0.02, -0.6])
    sh = ambient_sh(0.9, n).view(n, 3, 9)
    sh[:, :, 1], sh[:, :, 3] = 0.3, 0.2
    image, mask = renderer.render(verts, torch.full((n,), SIZE * 2.0), albedo(torch.zeros(n, albedo.n_components)),
                                  sh.view(n, 27), SIZE)
    out = torch.where(mask[:, None], linear_to_srgb(image), torch.full_like(image, 0.35))
    return (out.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def write_video(frames: np.ndarray, path: str | Path, fps: float = FPS) -> Path:
    """frames [n, H, W, 3] uint8 -> an H.264 .mp4 (yuv420p)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(path)


def compare(anim: AnimationTrack, truth: dict) -> dict:
    """Mean absolute errors: each animated shape's weight, all other shapes, yaw and pitch (degrees); the
    blink's recovered peak and its mean where the truth is open (both eyes), the jaw's peak."""
    names = [str(n) for n in anim.expression_names]
    errors = {name: float(np.abs(anim.weights[:, names.index(name)] - truth["weights"][:, names.index(name)]).mean())
              for name in ANIMATED}
    blinks = [names.index(n) for n in ANIMATED if "Blink" in n]
    errors["blink peak"] = float(anim.weights[:, blinks].max(0).mean())
    errors["blink when open"] = float(anim.weights[truth["weights"][:, blinks[0]] == 0][:, blinks].mean())
    errors["jaw peak"] = float(anim.weights[:, names.index("jawOpen")].max())
    others = [i for i, n in enumerate(names) if n not in ANIMATED]
    errors["other shapes"] = float(np.abs(anim.weights[:, others] - truth["weights"][:, others]).mean())
    angles = head_angles(anim.rotation)
    errors["yaw_deg"] = float(np.degrees(np.abs(angles[:, 0] - truth["yaw"])).mean())
    errors["pitch_deg"] = float(np.degrees(np.abs(angles[:, 1] - truth["pitch"])).mean())
    return errors


def plot_curves(anim: AnimationTrack, truth: dict, png: str | Path) -> None:
    from .plots import _pyplot

    plt = _pyplot()
    names = [str(n) for n in anim.expression_names]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    t = truth["times"]
    for name, colour in zip(ANIMATED, ("C0", "C1", "C2"), strict=True):
        axes[0 if "Blink" in name else 1].plot(t, truth["weights"][:, names.index(name)], color=colour, lw=3,
                                               alpha=0.4, label=f"{name} truth")
        axes[0 if "Blink" in name else 1].plot(anim.times, anim.weights[:, names.index(name)], color=colour,
                                               label=f"{name} recovered")
    angles = np.degrees(head_angles(anim.rotation))
    for k, (label, colour) in enumerate((("yaw", "C3"), ("pitch", "C4"))):
        axes[2].plot(t, np.degrees(truth[label]), color=colour, lw=3, alpha=0.4, label=f"{label} truth")
        axes[2].plot(anim.times, angles[:, k], color=colour, label=f"{label} recovered")
    for ax, title in zip(axes, ("blink", "jaw", "head (degrees)"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("seconds")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from backend.clip.animate import AnimateOptions, animate
    from backend.reconstruct.pipeline import ReconstructOptions, Reconstructor

    p = argparse.ArgumentParser(prog="python -m training.clip_eval", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/clip"))
    p.add_argument("--smooth", type=float, default=0.5)
    p.add_argument("--model")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = read_model(resolve_model_path(args.model))
    truth = truth_curves([str(n) for n in data.expression_names])
    clip = write_video(render_clip(data, AlbedoModel.load(), truth), args.out / "clip.mp4")
    rec = Reconstructor(ReconstructOptions(model=args.model, device=args.device))  # as `mlaface animate` runs
    _, anim, report = animate(rec, clip, AnimateOptions(smooth=args.smooth))
    errors = compare(anim, truth)
    plot_curves(anim, truth, args.out / "curves.png")
    report["frames/s"] = report["frames"] / sum(report["seconds"].values())
    print(json.dumps({"errors": errors, "report": report, "device": str(rec.device)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
