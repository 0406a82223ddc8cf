"""How well `mlaface animate` recovers the test clip of backend/clip/synthetic_clip.py (known curves).

    python -m training.clip_eval --out runs/clip     # writes clip.mp4, runs animate, prints errors, curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from backend.clip.synthetic_clip import FPS, render_clip, truth_curves
from backend.clip.video import write_video
from backend.io.animation import AnimationTrack, head_angles
from backend.io.model_file import read_model
from backend.model.albedo_model import AlbedoModel
from backend.model.store import resolve_model_path

ANIMATED = ("eyeBlinkLeft", "eyeBlinkRight", "jawOpen")


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
    clip = write_video(render_clip(data, AlbedoModel.load(), truth), args.out / "clip.mp4", FPS)
    rec = Reconstructor(ReconstructOptions(model=args.model, device=args.device))  # as `mlaface animate` runs
    _, anim, report = animate(rec, clip, AnimateOptions(smooth=args.smooth))
    errors = compare(anim, truth)
    plot_curves(anim, truth, args.out / "curves.png")
    report["frames/s"] = report["frames"] / sum(report["seconds"].values())
    print(json.dumps({"errors": errors, "report": report, "device": str(rec.device)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
