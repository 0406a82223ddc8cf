"""Training configs: TOML files under training/configs/, read into TrainConfig. Unknown keys are errors, so a
typo never silently trains with a default.

    [run]        seed, steps, batch (per rank), synthetic_share, lr, ..., checkpoint_every, eval_every
    [network]    variant = "mlanet_r18" plus any NetworkConfig field (image_size, fusion, channel_attention, ...)
    [loss]       LossWeights fields
    [synthetic]  SyntheticConfig fields
    [augment]    AugmentConfig fields
    [data]       crops (folder), limit, val_count
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from backend.io.errors import MlafaceError

from .losses import LossWeights
from .real_data import AugmentConfig
from .synthetic import SyntheticConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    steps: int = 1000
    batch: int = 32  # per rank
    synthetic_share: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 100
    grad_clip: float = 1.0
    photo_size: int = 0  # pixels of the photometric render; 0 = the network's input size
    checkpoint_every: int = 200
    log_every: int = 10
    eval_every: int = 200
    compile: bool = False
    device: str = "auto"
    imagenet: bool = True  # the backbone starts from torchvision's ImageNet weights where the torch cache has them
    synthetic_pool: int = 0  # > 0: render this many synthetic faces once and draw from them (CPU); 0: every batch
    yaw_balanced: bool = False  # real crops drawn equally from the |yaw| bins 0-30, 30-60, 60-90 (needs labels)

    def __post_init__(self):
        problems = [f"{name} must be 1 or more, got {getattr(self, name)}"
                    for name in ("steps", "batch", "checkpoint_every", "log_every", "eval_every")
                    if getattr(self, name) < 1]
        if not 0 <= self.synthetic_share <= 1:
            problems.append(f"synthetic_share must be between 0 and 1, got {self.synthetic_share}")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup < 0 or not self.grad_clip > 0:
            problems.append("lr and grad_clip must be above 0, weight_decay and warmup 0 or more")
        if self.synthetic_pool < 0:
            problems.append(f"synthetic_pool must be 0 (render every batch) or more, got {self.synthetic_pool}")
        if self.photo_size < 0:
            problems.append(f"photo_size must be 0 (the network's input size) or more, got {self.photo_size}")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"device must be auto, cpu or cuda, got {self.device!r}")
        if problems:
            raise MlafaceError("[run] " + "; ".join(problems))


@dataclass(frozen=True)
class DataConfig:
    crops: str = "../shared/data/aflw-crops"
    limit: int = 0  # 0 = all crops
    val_count: int = 500  # the last crops (file order), never trained on
    labels: str = ""  # 68-point teacher labels of the crops (training/teacher_labels.py); "" = none


@dataclass(frozen=True)
class TrainConfig:
    name: str
    run: RunConfig = RunConfig()
    network: dict = field(default_factory=lambda: {"variant": "mlanet_r18"})
    loss: LossWeights = LossWeights()
    synthetic: SyntheticConfig = SyntheticConfig()
    augment: AugmentConfig = AugmentConfig()
    data: DataConfig = DataConfig()

    def to_dict(self) -> dict:
        return asdict(self)


def _build(cls, table: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise MlafaceError(f"{where}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    return cls(**table)


def from_dict(d: dict, where: str = "config") -> TrainConfig:
    sections = {"run": RunConfig, "loss": LossWeights, "synthetic": SyntheticConfig, "augment": AugmentConfig,
                "data": DataConfig}
    unknown = set(d) - set(sections) - {"network", "name"}
    if unknown:
        raise MlafaceError(f"{where}: unknown sections {', '.join(sorted(unknown))}")
    network = dict(d.get("network", {}))
    network.setdefault("variant", "mlanet_r18")
    return TrainConfig(name=d.get("name", "run"), network=network,
                       **{k: _build(cls, d.get(k, {}), f"{where} [{k}]") for k, cls in sections.items()})


def load_config(name_or_path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """A config by file path or by name under training/configs/ (without .toml); overrides: {"run.steps": 10}."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        names = ", ".join(p.stem for p in sorted(CONFIG_DIR.glob("*.toml")))
        raise MlafaceError(f"{name_or_path}: no such training config (configs: {names})")
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise MlafaceError(f"{path}: not valid TOML ({e})") from None
    d.setdefault("name", path.stem)
    for key, value in (overrides or {}).items():
        section, _, name = key.rpartition(".")
        (d.setdefault(section, {}) if section else d)[name] = value
    return from_dict(d, str(path))
