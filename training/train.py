"""The training loop: synthetic faces (exact parameters) and real AFLW crops (visible 21 points, photometric)
in every batch, one network forward, the losses of training/losses.py.

    python -m training.train --config mlanet_r18_cpu --out runs/r18            # or: mlaface train ...
    python -m training.train --config mlanet_r18_cpu --out runs/r18 --resume   # continue after a kill
    torchrun --nproc_per_node 8 -m training.train --config mlanet_r50 --out runs/r50   # several GPUs / machines

Every batch is a pure function of (seed, step, rank): synthetic faces come from a Generator seeded with them and
the crops from a seeded per-epoch permutation, sharded by rank. So a checkpoint needs only the weights, the
optimizer and the step, and `--resume` continues exactly where the run was killed. Under torchrun the model is
wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU); rank 0 alone logs, evaluates and writes files.
Images and weights are channels_last (on 2 CPU cores mlanet_dw's forward and backward at batch 128 take 208 ms
instead of 282); on CUDA bf16 autocast too; `compile = true` in [run] adds torch.compile (on the CPU 4% faster
after a minute of compiling: not used there).

Run folder: checkpoint.pt (resume state), best.pt and last.pt (network only: backend.network.checkpoint.load_network),
log.csv, tensorboard/ (when tensorboard is installed), curve.png, config.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from backend.io.atomic import atomic_path
from backend.io.errors import MlafaceError
from backend.model.albedo_model import AlbedoModel
from backend.model.face_model import FaceModel
from backend.network.checkpoint import load_imagenet_backbone, load_network, save_checkpoint
from backend.network.decode import crop_points, decode_params, landmark_sigma, points_head_output
from backend.network.mlanet import MLANet, create_network
from backend.render.camera import to_landmark_pixels
from backend.render.head import FaceRenderer

from . import losses
from .aflw2000 import YAW_BINS, yaw_bin
from .aflw_crops import load_crops
from .arguments import add_train_arguments
from .config import TrainConfig, load_config
from .deepen import deepen_from, deepens
from .plots import training_curve
from .real_data import RealFaces, balanced_indices, batch_indices, colour_jitter, framing_zoom
from .run_log import RunLog
from .synthetic import SyntheticFaces, SyntheticPool
from .teacher_labels import SAME_PLACE, read_labels

NETWORK_TEXTURE = 60  # albedo components the network predicts unless its config says: the shipped networks' 60


class RawParams(nn.Module):
    """The network as DDP wraps it: image -> parameter vector (decoding stays outside, in float32)."""

    def __init__(self, net: MLANet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.forward_raw(image)


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 1024 + rank


def learning_rate(cfg: TrainConfig, step: int) -> float:
    r = cfg.run
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    return r.lr * 0.5 * (1 + math.cos(math.pi * (step - r.warmup) / max(1, r.steps - r.warmup)))


class Trainer:
    def __init__(self, cfg: TrainConfig, out: Path, model_path: str | None = None, albedo_path: str | None = None,
                 log=print):
        self.cfg, self.out, self.log = cfg, out, log
        self.distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
        want = cfg.run.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if self.distributed:
            dist.init_process_group("nccl" if want == "cuda" else "gloo")
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            if want == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        else:
            self.rank, self.world = 0, 1
        self.device = torch.device(want, torch.cuda.current_device()) if want == "cuda" else torch.device("cpu")
        self.cuda = self.device.type == "cuda"
        torch.manual_seed(cfg.run.seed)

        net_cfg = dict(cfg.network)
        variant = net_cfg.pop("variant")
        self.albedo = AlbedoModel.load(albedo_path).to(self.device)
        net_cfg.setdefault("n_texture", min(self.albedo.n_components, NETWORK_TEXTURE))
        self.net = create_network(variant, **net_cfg)
        imagenet = load_imagenet_backbone(self.net) if cfg.run.imagenet else None
        self.net = self.net.to(self.device)
        self.size = self.net.cfg.image_size
        self.photo_size = cfg.run.photo_size or self.size
        self.model = FaceModel.load(model_path).face_subset().to(self.device)
        self.renderer = FaceRenderer(self.model)

        names, images, pts, _ = load_crops(cfg.data.crops, cfg.data.limit or None)
        n_val = min(cfg.data.val_count, len(names) // 5)
        labels = read_labels(cfg.data.labels, names) if cfg.data.labels else None
        if cfg.run.yaw_balanced and labels is None:
            raise MlafaceError("[run] yaw_balanced needs the teacher's labels ([data] labels) for the crops' yaw")
        cut = len(names) - n_val
        self.real = RealFaces(images[:cut], pts[:cut], self.size, 1.0, cfg.augment, self.device,
                              (labels.points[:cut], labels.weights[:cut]) if labels else None)
        self.val = RealFaces(images[cut:], pts[cut:], self.size, 1.0, cfg.augment, self.device)
        self.yaw_groups = None
        if cfg.run.yaw_balanced:
            bins = np.array([yaw_bin(y) for y in labels.yaw_deg[:cut]])
            self.yaw_groups = [torch.from_numpy(np.flatnonzero(bins == b)) for b in range(len(YAW_BINS))]
            if min(len(g) for g in self.yaw_groups) < cfg.run.batch:
                raise MlafaceError(f"[run] yaw_balanced: a |yaw| bin holds {min(map(len, self.yaw_groups))} "
                                   f"training crops, fewer than a batch")
        backgrounds = self.real.images
        self.synth = SyntheticFaces(self.model, self.albedo, self.size, backgrounds, cfg.synthetic)
        probe = self.synth.sample(256, torch.Generator(self.device).manual_seed(cfg.run.seed))
        zoom = framing_zoom(pts, images.shape[1], probe["lm21"].cpu().numpy(), self.size)
        self.real.zoom = self.val.zoom = zoom
        self.pool = SyntheticPool(self.synth, cfg.run.synthetic_pool, cfg.run.seed) if cfg.run.synthetic_pool \
            else None
        if self.net.cfg.points:  # a new points head starts at the mean layout of the training framing
            with torch.no_grad():
                self.net.heads["points"].fc2.bias.copy_(points_head_output(probe["lm68"].mean(0), self.net.cfg))

        self.net = self.net.to(memory_format=torch.channels_last)
        self.module = RawParams(self.net)
        model_for_step = self.module
        if self.distributed:
            model_for_step = nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.cuda else None)
        if cfg.run.compile:
            model_for_step = torch.compile(model_for_step)
        self.forward = model_for_step
        self.optim = torch.optim.AdamW(self.net.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay)
        self.step = 0
        self.best = float("inf")
        if self.rank == 0:
            self.log(f"{self.net.cfg.name}: {sum(p.numel() for p in self.net.parameters()) / 1e6:.1f} M parameters, "
                     f"{self.size}px; {len(self.real)} training crops, {len(self.val)} validation crops "
                     f"(framing zoom {zoom:.3f}); {self.world} rank(s) on {self.device}; backbone "
                     + (f"from ImageNet ({imagenet})" if imagenet else "from scratch (no ImageNet weights in the "
                        "torch hub cache)" if cfg.run.imagenet else "from scratch"))

    # --- state ---------------------------------------------------------------------------------------------

    def init_from(self, path: str | Path) -> None:
        """Start from a network file's weights (an earlier run's best.pt, or shipped weights) of the same
        architecture, or of one with fewer blocks per stage (training/deepen.py); the optimiser and the step
        start anew."""
        other = load_network(path)
        if other.cfg == self.net.cfg:
            self.net.load_state_dict(other.state_dict())
            grown = ""
        elif deepens(other, self.net):
            added = deepen_from(self.net, other)
            parts = [f"stage depths {other.cfg.depths} -> {self.net.cfg.depths}: {added} blocks added as identities"
                     ] if added else []
            parts += ["the points head added"] if self.net.cfg.points > other.cfg.points else []
            grown = f" ({'; '.join(parts)})"
        else:
            raise MlafaceError(f"{path}: a {other.cfg.name} network of another architecture than the config's "
                               f"{self.net.cfg.name} ({other.cfg} vs {self.net.cfg}; only more blocks per stage "
                               f"and an added points head may differ)")
        if self.rank == 0:
            self.log(f"initialised from {path}{grown}")

    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save(self) -> None:
        if self.rank != 0:
            return
        state = {"step": self.step, "net": self.net.state_dict(), "optim": self.optim.state_dict(),
                 "best": self.best, "config": self.cfg.to_dict()}
        with atomic_path(self.checkpoint_path()) as tmp:
            torch.save(state, tmp)

    def resume(self) -> bool:
        path = self.checkpoint_path()
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        if json.loads(json.dumps(state["config"])) != json.loads(json.dumps(self.cfg.to_dict())):
            raise MlafaceError(f"{path}: written with another config; use a new --out folder or the same config")
        self.net.load_state_dict(state["net"])
        self.optim.load_state_dict(state["optim"])
        self.step, self.best = int(state["step"]), float(state["best"])
        log = self.out / "log.csv"
        if self.rank == 0 and log.is_file():  # rows logged after the checkpoint will be logged again
            lines = log.read_text().splitlines(keepends=True)
            kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= self.step]
            log.write_text("".join(kept))
        return True

    # --- one step ------------------------------------------------------------------------------------------

    def batch(self, step: int) -> tuple[dict, dict]:
        cfg = self.cfg.run
        g = torch.Generator(self.device).manual_seed(step_seed(cfg.seed, step, self.rank))
        n_syn = int(round(cfg.batch * cfg.synthetic_share))
        if self.yaw_groups is not None:
            index = balanced_indices(self.yaw_groups, step, cfg.batch - n_syn, cfg.seed, self.rank, self.world)
        else:
            index = batch_indices(len(self.real), step, cfg.batch - n_syn, cfg.seed, self.rank, self.world)
        if self.pool is not None:
            syn = self.pool.sample(n_syn, g)
            syn["image"] = colour_jitter(syn["image"], self.cfg.augment, g).clamp(0, 1)
        else:
            syn = self.synth.sample(n_syn, g)
        return syn, self.real.sample(index.to(self.device), g)

    def geometry(self, p) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> camera-space vertices [B, V, 3], lm68 and lm21 [B, L, 2] crop pixels (0-based)."""
        cam = p.camera_vertices(self.model)
        lm68 = to_landmark_pixels(self.model.landmarks(cam), p.focal, (self.size, self.size))
        lm21 = to_landmark_pixels(self.model.landmarks(cam, "aflw21"), p.focal, (self.size, self.size))
        return cam, lm68, lm21

    def losses(self, syn: dict, real: dict) -> dict[str, torch.Tensor]:
        image = torch.cat([syn["image"], real["image"]]).contiguous(memory_format=torch.channels_last)
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else nullcontext()
        with amp:
            raw = self.forward(image)
        p = decode_params(raw.float(), self.net.cfg)
        cam, lm68, lm21 = self.geometry(p)
        n = len(syn["image"])
        S, terms = self.size, {}
        every68 = torch.ones_like(syn["lm68"][..., 0], dtype=torch.bool)  # a synthetic face's points are all known
        terms["landmark_syn68"] = losses.landmark_loss(lm68[:n], syn["lm68"], every68, S)
        terms["landmark_syn21"] = losses.landmark_loss(lm21[:n], syn["lm21"], syn["vis21"], S)
        terms["landmark_real"] = losses.landmark_loss(lm21[n:], real["lm21"], real["vis21"], S)
        if "lm68" in real:  # the teacher's labels, weighted by their confidence
            terms["landmark_real68"] = losses.landmark_loss(lm68[n:], real["lm68"], real["w68"], S)
        followed = lm68  # the points the pipeline follows: the points head's where there is one
        if self.net.cfg.points:
            followed = crop_points(raw.float(), self.net.cfg)
            terms["points_syn"] = losses.landmark_loss(followed[:n], syn["lm68"], every68, S)
            if "lm68" in real:
                terms["points_real"] = losses.landmark_loss(followed[n:], real["lm68"], real["w68"], S)
        if self.net.cfg.confidence:
            truth, weight = syn["lm68"], torch.ones_like(syn["lm68"][..., 0])
            if "lm68" in real:
                truth, weight = torch.cat([truth, real["lm68"]]), torch.cat([weight, real["w68"]])
            sigma = landmark_sigma(raw.float(), self.net.cfg)[:len(truth)]
            terms["confidence"] = losses.confidence_loss(sigma, followed[:len(truth)], truth, weight, S)
        terms["vertex"] = losses.vertex_loss(cam[:n], syn["verts_cam"])
        terms.update(losses.parameter_losses(p.rows(slice(None, n)), syn))
        terms.update(losses.prior_losses(p.rows(slice(n, None))))
        if self.cfg.loss.photometric > 0:
            ps = self.photo_size
            scale = ps / S
            rendered, mask = self.renderer.render(cam, p.focal * scale, self.albedo(p.texture), p.sh, ps)
            target = image if ps == S else torch.nn.functional.interpolate(image.float(), size=(ps, ps),
                                                                           mode="area")
            terms["photometric"] = losses.photometric_loss(rendered, target.float(), mask)
        return terms

    # --- validation ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> float:
        """Mean NME (%, distance / sqrt(w * h) of the visible 21 points' box) on the held-out crops of the points
        the pipeline follows: the face model's 21 AFLW landmarks, or for a network with a points head its 68
        points at the places the AFLW-21 scheme marks too (teacher_labels.SAME_PLACE, 7 of the 21; 13 with the
        brows until stage 12, so later held-out figures are not comparable with earlier ones)."""
        self.net.eval()
        same21, same68 = list(SAME_PLACE), list(SAME_PLACE.values())
        errors = []
        for i in range(0, len(self.val), 64):
            index = torch.arange(i, min(i + 64, len(self.val)), device=self.device)
            b = self.val.sample(index, torch.Generator(self.device).manual_seed(0), augment=False)
            amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else nullcontext()
            with amp:
                raw = self.module(b["image"])
            big = torch.where(b["vis21"][..., None], b["lm21"], torch.full_like(b["lm21"], float("inf")))
            small = torch.where(b["vis21"][..., None], b["lm21"], torch.full_like(b["lm21"], -float("inf")))
            wh = small.amax(1) - big.amin(1)
            norm = (wh[:, 0] * wh[:, 1]).clamp(min=1).sqrt()
            if self.net.cfg.points:
                pred, truth, vis = (crop_points(raw.float(), self.net.cfg)[:, same68], b["lm21"][:, same21],
                                    b["vis21"][:, same21].float())
            else:
                _, _, pred = self.geometry(decode_params(raw.float(), self.net.cfg))
                truth, vis = b["lm21"], b["vis21"].float()
            d = (pred - truth).norm(dim=-1) / norm[:, None]
            errors.append((d * vis).sum(1) / vis.sum(1).clamp(min=1))
        self.net.train()
        return float(torch.cat(errors).mean() * 100)

    # --- the loop ------------------------------------------------------------------------------------------

    def train(self, progress: bool = True) -> dict:
        cfg = self.cfg.run
        log = None
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2))
            log = RunLog(self.out, self.step, cfg.steps, progress, self.log)
        guard = FiniteGuard(self.device)
        self.net.train()
        t_log, images = time.perf_counter(), 0
        start = time.perf_counter()
        try:
            while self.step < cfg.steps:
                lr = learning_rate(self.cfg, self.step)
                terms, loss = self.train_step(lr, guard)
                images += cfg.batch * self.world
                self.step += 1
                logged = self.step % cfg.log_every == 0
                evaluated = self.step % cfg.eval_every == 0 or self.step == cfg.steps
                saved = self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps
                if not self.cuda or logged or evaluated or saved:  # where the loop syncs anyway
                    guard.check()
                val = None
                if self.rank == 0 and evaluated:
                    val = self.validate()
                    if val < self.best:
                        self.best = val
                        save_checkpoint(self.out / "best.pt", self.net, step=self.step, val_nme21=val)
                if log and (logged or val is not None):
                    rate = images / (time.perf_counter() - t_log)
                    t_log, images = time.perf_counter(), 0
                    log.row(self.step, lr, float(loss), rate, val, {k: float(v) for k, v in terms.items()})
                if saved:
                    self.save()
                    if self.rank == 0:
                        training_curve(self.out / "log.csv", self.out / "curve.png")
        finally:
            if log:
                log.close()
        if self.rank == 0:
            save_checkpoint(self.out / "last.pt", self.net, step=self.step, val_nme21=self.best)
        if self.distributed:
            dist.barrier()
            dist.destroy_process_group()
        return {"steps": self.step, "best_val_nme21": self.best, "seconds": time.perf_counter() - start}

    def train_step(self, lr: float, guard: FiniteGuard) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One optimiser step at learning rate lr -> (the loss terms, the total), detached, on the device."""
        for group in self.optim.param_groups:
            group["lr"] = lr
        syn, real = self.batch(self.step)
        terms = self.losses(syn, real)
        loss = losses.total(terms, self.cfg.loss)
        guard.watch(self.step, terms)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.run.grad_clip)
        self.optim.step()
        return {k: v.detach() for k, v in terms.items()}, loss.detach()


class NonFiniteLoss(MlafaceError):
    """A loss term became NaN or infinite: the step and the terms say where."""


class FiniteGuard:
    """Watches the loss terms for NaN and inf without a device sync per step: the first bad step and its terms
    stay on the device until `check` (called where the loop syncs anyway; every step on the CPU) raises
    NonFiniteLoss. Checkpoints are written only after a check, so a run never saves weights a bad step touched."""

    def __init__(self, device: torch.device):
        self.bad_step = torch.tensor(-1, device=device)
        self.bad_terms: torch.Tensor | None = None
        self.names: list[str] = []

    def watch(self, step: int, terms: dict[str, torch.Tensor]) -> None:
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
        if self.bad_terms is None:
            self.names, self.bad_terms = list(terms), torch.zeros_like(values)
        first = (self.bad_step < 0) & ~torch.isfinite(values).all()
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_terms = torch.where(first, values, self.bad_terms)

    def check(self) -> None:
        step = int(self.bad_step)
        if step >= 0:
            terms = ", ".join(f"{n}={float(v):.4g}" for n, v in zip(self.names, self.bad_terms, strict=True))
            raise NonFiniteLoss(f"step {step}: the loss is not finite ({terms}); try a lower run.lr or "
                                f"run.grad_clip, or --resume from the last checkpoint")


def parse_overrides(items: list[str]) -> dict:
    """["run.steps=10", "network.fusion=false"] -> {"run.steps": 10, "network.fusion": False} (TOML values)."""
    import tomllib

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise MlafaceError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, parse_overrides(args.set))
    if not args.resume and (args.out / "checkpoint.pt").is_file():
        raise MlafaceError(f"{args.out} holds a run already: pass --resume to continue it, or another --out")
    trainer = Trainer(cfg, args.out, args.model, args.albedo, log=lambda m: print(m, file=sys.stderr))
    if args.resume and trainer.resume():
        if trainer.rank == 0:
            print(f"resumed at step {trainer.step}", file=sys.stderr)
    elif args.init:
        trainer.init_from(args.init)
    result = trainer.train(progress=not args.no_progress)
    if trainer.rank == 0:
        print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    add_train_arguments(p)
    try:
        return run(p.parse_args(argv))
    except MlafaceError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
