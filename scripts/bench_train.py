"""Training throughput: images per second of whole training steps (data on the device, synthetic rendering,
augmentation, forward, losses with the renderer in the loop, backward, optimizer), and where the time goes.

    python scripts/bench_train.py --config mlanet_r18_cpu [--steps 20] [--set run.batch=64 ...]
    python scripts/bench_train.py --config mlanet_r50 --set run.batch=256       # on a GPU (the 2,000 img/s target)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from training import losses
from training.config import load_config
from training.train import Trainer, parse_overrides


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="mlanet_r18_cpu")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args()
    cfg = load_config(args.config, parse_overrides(args.set))
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(cfg, Path(tmp), log=print)
    dev, B = t.device, cfg.run.batch
    parts = {"data (synthetic render + augmentation)": 0.0, "forward + losses (renderer in the loop)": 0.0,
             "backward + optimizer": 0.0}
    for step in range(args.warmup + args.steps):
        sync(dev)
        t0 = time.perf_counter()
        syn, real = t.batch(step)
        sync(dev)
        t1 = time.perf_counter()
        terms = t.losses(syn, real)
        loss = losses.total(terms, cfg.loss)
        sync(dev)
        t2 = time.perf_counter()
        t.optim.zero_grad(set_to_none=True)
        loss.backward()
        t.optim.step()
        sync(dev)
        t3 = time.perf_counter()
        if step >= args.warmup:
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                parts[key] += dt
    total = sum(parts.values())
    print(f"{cfg.name}: {t.net.cfg.name} at {t.size}px, batch {B}, photometric at {t.photo_size}px, on {dev}"
          f"{' (' + torch.cuda.get_device_name(dev) + ')' if dev.type == 'cuda' else ''}")
    print(f"{B * args.steps / total:.1f} images/s for whole training steps ({total / args.steps * 1000:.0f} ms a step)")
    for key, value in parts.items():
        print(f"  {key:42s} {value / args.steps * 1000:8.1f} ms  {value / total:6.1%}")


if __name__ == "__main__":
    main()
