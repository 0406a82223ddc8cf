"""The run options of `mlaface reconstruct` and the worker (ReconstructOptions, the output formats), checked where
they are defined so that the command line and the worker refuse the same values in the same words. No torch here:
the command line checks its options before anything heavy loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..detect.landmarks import PROVIDERS
from ..io.errors import MlafaceError, OptionError

if TYPE_CHECKING:
    from .fitting import FitConfig

DEVICES = ("auto", "cpu", "cuda")
TEXTURE_SIZES = (256, 4096)
MAX_FIT_STEPS = 10_000
FIT_STEPS = 40  # the fit's steps by default (reconstruct/fitting.py; the Blender add-on's preference says 40 too)
FORMATS = ("npz", "obj", "glb", "overlay")


@dataclass(frozen=True)
class ReconstructOptions:
    device: str = "auto"  # auto, cpu or cuda
    fit_steps: int = FIT_STEPS
    texture_size: int = 1024
    provider: str = "auto"
    all_faces: bool = False
    model: str | None = None  # face model file (default: $MLAFACE_MODEL, then the cache)
    weights: str | None = None  # network weights (default: $MLAFACE_WEIGHTS, shipped, cache)

    def __post_init__(self):
        if self.device not in DEVICES:
            raise OptionError("device", f"must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not TEXTURE_SIZES[0] <= self.texture_size <= TEXTURE_SIZES[1]:
            raise OptionError("texture_size", f"must be between {TEXTURE_SIZES[0]} and {TEXTURE_SIZES[1]}, "
                                              f"got {self.texture_size}")
        if not 0 <= self.fit_steps <= MAX_FIT_STEPS:
            raise OptionError("fit_steps", f"must be between 0 and {MAX_FIT_STEPS}, got {self.fit_steps}")
        if self.provider not in ("auto", *PROVIDERS):
            raise OptionError("provider", f"must be auto, {', '.join(PROVIDERS)}, got {self.provider!r}")

    def fit_config(self, **changes) -> FitConfig:
        from .fitting import FitConfig

        return FitConfig(steps=self.fit_steps, **changes)


def parse_formats(text: str | list[str]) -> list[str]:
    names = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise MlafaceError(f"unknown output format(s) {', '.join(unknown) or '(none)'}; "
                           f"choose from {', '.join(FORMATS)}")
    return names
