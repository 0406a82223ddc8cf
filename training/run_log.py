"""A training run's records, written by rank 0: log.csv (one row every log_every steps and at every evaluation),
TensorBoard scalars when tensorboard is installed, and a one-line progress bar on stderr."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

COLUMNS = ["step", "seconds", "lr", "loss", "images_per_s", "val_nme21", "terms"]


class Progress:
    """One line on stderr: step, loss, images per second, time left."""

    def __init__(self, total: int, start_step: int):
        self.total, self.start, self.t0 = total, start_step, time.perf_counter()

    def update(self, step: int, loss: float, rate: float) -> None:
        done = step + 1
        frac = done / self.total
        left = (self.total - done) * (time.perf_counter() - self.t0) / max(1, done - self.start)
        bar = "#" * int(24 * frac)
        print(f"\rstep {done}/{self.total} [{bar:<24}] loss {loss:.4f} {rate:6.1f} img/s "
              f"{int(left // 60):3d}:{int(left % 60):02d} left", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


class RunLog:
    """Appends to OUT/log.csv (a resumed run keeps its earlier rows) and OUT/tensorboard/; a context manager."""

    def __init__(self, out: Path, step: int, total_steps: int, progress: bool, log=print):
        out.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()
        self.tensorboard = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(out / "tensorboard"), purge_step=step)
        except ImportError:
            log("tensorboard is not installed: logging to log.csv only")
        path = out / "log.csv"
        new = not path.is_file()
        self.file = open(path, "a", newline="")  # noqa: SIM115 (closed by close())
        self.csv = csv.writer(self.file)
        if new:
            self.csv.writerow(COLUMNS)
        self.bar = Progress(total_steps, step) if progress else None

    def row(self, step: int, lr: float, loss: float, rate: float, val: float | None, terms: dict[str, float]) -> None:
        """One logged step (step counts finished steps); val: the validation NME when evaluated."""
        self.csv.writerow([step, f"{time.perf_counter() - self.start:.1f}", f"{lr:.3g}", f"{loss:.5f}",
                           f"{rate:.1f}", "" if val is None else f"{val:.3f}", json.dumps(terms)])
        self.file.flush()
        if self.tensorboard:
            self.tensorboard.add_scalar("loss/total", loss, step)
            for k, v in terms.items():
                self.tensorboard.add_scalar(f"loss/{k}", v, step)
            self.tensorboard.add_scalar("lr", lr, step)
            self.tensorboard.add_scalar("images_per_s", rate, step)
            if val is not None:
                self.tensorboard.add_scalar("val/nme21", val, step)
        if self.bar:
            self.bar.update(step - 1, loss, rate)

    def close(self) -> None:
        if self.bar:
            self.bar.close()
        if self.tensorboard:
            self.tensorboard.close()
        self.file.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
