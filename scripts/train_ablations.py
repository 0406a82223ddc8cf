"""The ablation: the same training run with and without the attention modules and the multi-scale fusion,
each evaluated on AFLW2000-3D (training/evaluate.py). Prints a markdown table and writes OUT/ablations.json.

    python scripts/train_ablations.py [--config tiny_ablation] [--out runs/ablations] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from backend.model.face_model import FaceModel
from backend.network.checkpoint import load_network
from backend.network.complexity import complexity
from training.config import load_config
from training.evaluate import evaluate
from training.train import Trainer

ABLATIONS = {
    "full (channel + spatial attention, fusion)": {},
    "no attention": {"network.channel_attention": False, "network.spatial_attention": False},
    "no fusion": {"network.fusion": False},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="tiny_ablation")
    p.add_argument("--out", type=Path, default=Path("runs/ablations"))
    p.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    args = p.parse_args()
    rows = []
    model = FaceModel.load().face_subset()
    for label, overrides in ABLATIONS.items():
        cfg = load_config(args.config, overrides)
        out = args.out / label.split(" (")[0].replace(" ", "_")
        start = time.perf_counter()
        result = Trainer(cfg, out, log=lambda m: print(m, file=sys.stderr)).train(progress=False)
        net = load_network(out / "best.pt").eval()
        ev = evaluate(net, model, args.data)
        params, macs = complexity(net)
        rows.append({"ablation": label, "params_m": params / 1e6, "gmacs": macs / 1e9,
                     "val_nme21": result["best_val_nme21"], "aflw2000_balanced": ev["table"]["balanced"],
                     "aflw2000_bins": [v for _, _, v in ev["table"]["bins"]],
                     "train_seconds": time.perf_counter() - start})
        print(f"{label}: {rows[-1]}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablations.json").write_text(json.dumps(rows, indent=1))
    print("| ablation | params (M) | GMACs | val NME21 (%) | AFLW2000 0-30 / 30-60 / 60-90 | balanced |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        bins = " / ".join(f"{v:.2f}" for v in r["aflw2000_bins"])
        print(f"| {r['ablation']} | {r['params_m']:.2f} | {r['gmacs']:.3f} | {r['val_nme21']:.2f} | {bins} | "
              f"{r['aflw2000_balanced']:.2f} |")


if __name__ == "__main__":
    main()
