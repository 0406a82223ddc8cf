"""Pictures of training and evaluation (matplotlib, Agg backend): the training curve and the cumulative error
distribution (CED) of a benchmark."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from backend.io.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curve(log_csv: str | Path, png: str | Path) -> None:
    """The loss terms (log scale) and the validation NME against the step, from a training log.csv."""
    rows = list(csv.DictReader(open(log_csv)))
    if not rows:
        return
    plt = _pyplot()
    steps = np.array([int(r["step"]) for r in rows])
    fig, (ax, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    terms = [json.loads(r["terms"]) for r in rows]
    ax.plot(steps, [float(r["loss"]) for r in rows], color="black", lw=2, label="total")
    for i, name in enumerate(terms[0]):  # past the 10-colour cycle, the colours again, dashed
        ax.plot(steps, [t[name] for t in terms], lw=1, color=f"C{i % 10}", ls="-" if i < 10 else "--", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("training losses")
    ax.legend(fontsize=7, ncol=2)
    val = [(int(r["step"]), float(r["val_nme21"])) for r in rows if r["val_nme21"]]
    if val:
        ax_val.plot(*zip(*val, strict=True), marker="o")
    ax_val.set_xlabel("step")
    ax_val.set_ylabel("NME (%)")
    ax_val.set_title("held-out AFLW crops (Trainer.validate)")
    fig.tight_layout()
    with atomic_path(Path(png)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def ced_plot(curves: dict[str, np.ndarray], png: str | Path, title: str, limit: float = 10.0) -> None:
    """curves: label -> [N] NME in % per face; the share of faces at or under each error."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    x = np.linspace(0, limit, 401)
    for label, errors in curves.items():
        e = np.sort(np.asarray(errors))
        ax.plot(x, np.searchsorted(e, x, side="right") / len(e), label=label)
    ax.set_xlim(0, limit)
    ax.set_ylim(0, 1)
    ax.set_xlabel("NME (%)")
    ax.set_ylabel("share of faces")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(Path(png)) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
