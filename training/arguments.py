"""The command-line arguments of `mlaface train` / `python -m training.train` (argparse only, so that registering the
command loads nothing heavy)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="a name under training/configs/ or a .toml path")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, logs, curve)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    p.add_argument("--init", type=Path, metavar="WEIGHTS",
                   help="start from these network weights (a run that continues in a new sitting); not with --resume")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config value")
    p.add_argument("--model", help="face model file (default: the installed one)")
    p.add_argument("--albedo", help="albedo model file (default: the shipped one)")
    p.add_argument("--no-progress", action="store_true")
