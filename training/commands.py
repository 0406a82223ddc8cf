"""The `mlaface train` and `mlaface evaluate` commands, registered with backend.serve.cli through the entry point group
"mlaface.commands" (pyproject.toml). Only argparse here: the heavy modules load when a command runs, so other
`mlaface` commands start no slower for them."""

from __future__ import annotations

import argparse

from backend.reconstruct.options import FIT_STEPS

from .arguments import add_train_arguments


def _train(args: argparse.Namespace) -> int:
    from .train import run

    return run(args)


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import run

    return run(args)


def _evaluate_scans(args: argparse.Namespace) -> int:
    from .scan_eval import run

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
    a.add_argument("--pipeline", action="store_true",
                   help="also run the whole path from the full photo (detection, landmarks, network, blend, fit) "
                        "and print its table beside the network's; faces not found are listed")
    a.add_argument("--mirror", action="store_true",
                   help="the network's points averaged with those read from the mirrored crop (test-time augmentation)")
    a.add_argument("--projected", action="store_true",
                   help="score the face model's projected landmarks even where the network has a points head")
    a.add_argument("--floor", action="store_true",
                   help="instead: the fitting floor, the fit to the benchmark's own 68 points (no network)")
    a.add_argument("--every", type=int, default=1, metavar="N", help="score every N-th image (default: all)")
    a.add_argument("--fit-steps", type=int, metavar="N",
                   help="fitting steps of --pipeline and --floor (default: mlaface reconstruct's)")
    a.add_argument("-o", "--output", default="eval", metavar="OUTDIR", help="where the JSON and PNG go (eval/)")
    a.set_defaults(func=_evaluate)
    s = which.add_parser("scans", help="3D shape against scans (NoW, MICC Florence or a manifest): scan-to-mesh "
                                       "distance in mm after the protocols' alignment, with baselines")
    s.add_argument("data", metavar="DIR", help="the benchmark folder (or its manifest.json)")
    s.add_argument("--layout", default="auto", choices=["auto", "now", "micc", "manifest"])
    s.add_argument("--weights", metavar="FILE", help="network weights (default: $MLAFACE_WEIGHTS, shipped, cache)")
    s.add_argument("--model", metavar="FILE", help="face model file")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--fit-steps", type=int, default=FIT_STEPS, metavar="N", help="fitting steps (reconstruct's)")
    s.add_argument("--every", type=int, default=1, metavar="N", help="score every N-th case (default: all)")
    s.add_argument("-o", "--output", default="eval", metavar="OUTDIR", help="where the JSON and PNG go (eval/)")
    s.set_defaults(func=_evaluate_scans)
