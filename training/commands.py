"""The `mlaface train` and `mlaface evaluate` commands, registered with backend.serve.cli through the entry point group
"mlaface.commands" (pyproject.toml). Only argparse here: the heavy modules load when a command runs, so other
`mlaface` commands start no slower for them."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="a name under training/configs/ or a .toml path")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, logs, curve)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    p.add_argument("--model", help="face model file (default: the installed one)")
    p.add_argument("--albedo", help="albedo model file (default: the shipped one)")
    p.add_argument("--no-progress", action="store_true")


def _train(args: argparse.Namespace) -> int:
    from .train import run

    return run(args)


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import run

    return run(args)


def train(commands) -> None:
    p = commands.add_parser("train", help="train the network (see training/train.py)")
    add_train_arguments(p)
    p.set_defaults(func=_train)


def evaluate(commands) -> None:
    ev = commands.add_parser("evaluate", help="measure a trained network on a benchmark")
    which = ev.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    a = which.add_parser("aflw2000", help="AFLW2000-3D: 68-point NME by yaw (standard protocol) and 3D error")
    a.add_argument("data", metavar="DIR", help="folder of AFLW2000-3D imageNNNNN.jpg + .mat")
    a.add_argument("--weights", metavar="FILE", help="network weights (default: $MLAFACE_WEIGHTS, shipped, cache)")
    a.add_argument("--variant", default=None, help="which shipped variant when --weights is not given "
                                                   "(default: the first with weights)")
    a.add_argument("--model", metavar="FILE", help="face model file")
    a.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    a.add_argument("-o", "--output", default="eval", metavar="OUTDIR", help="where the JSON and PNG go (eval/)")
    a.set_defaults(func=_evaluate)
