"""The network's parameter vector and the fixed maps that turn it into model/params.FaceParams, in the crop camera
the network sees: focal CROP_FOCAL at 224 pixels, principal point at the crop centre."""

from __future__ import annotations

import torch

from ..model.params import FaceParams
from ..model.pose import rotation_from_6d
from ..render.shading import ambient_sh
from .config import NetworkConfig

CROP_FOCAL = 1015.0  # pixels at 224 x 224 (a 12.6 degree field of view): the crop camera of Deep3DFaceRecon
CROP_DEPTH = 1.0  # metres: at CROP_FOCAL the mean face then fills the canonical crop framing (backend.align)


def param_layout(cfg: NetworkConfig) -> dict[str, int]:
    """Attribute -> width of its slice of the parameter vector, in vector order."""
    layout = {"identity": cfg.n_identity, "expression": cfg.n_expression, "texture": cfg.n_texture,
              "rotation": 6, "translation": 3, "log_focal": 1, "sh": 27}
    if cfg.confidence:
        layout["landmark_sigma"] = 68
    if cfg.points:
        layout["points"] = 136
    return layout


def _slice(raw: torch.Tensor, cfg: NetworkConfig, name: str) -> torch.Tensor:
    """The columns of attribute `name` in the parameter vector raw [B, P]."""
    layout = param_layout(cfg)
    names = list(layout)
    start = sum(layout[n] for n in names[:names.index(name)])
    return raw[:, start:start + layout[name]]


def decode_params(raw: torch.Tensor, cfg: NetworkConfig) -> FaceParams:
    """The fixed maps from the parameter vector to FaceParams. A zero vector is the mean face, no expression,
    frontal at CROP_DEPTH, ambient light: heads start there."""
    layout = param_layout(cfg)
    parts = dict(zip(layout, raw.split(list(layout.values()), dim=1), strict=True))
    eye6 = raw.new_tensor([1.0, 0, 0, 0, 1.0, 0])
    t = parts["translation"]
    return FaceParams(
        identity=parts["identity"],
        expression=torch.sigmoid(parts["expression"] - 4.0),  # 0.018 at zero
        texture=parts["texture"],
        rotation=rotation_from_6d(parts["rotation"] + eye6),
        translation=torch.stack([0.1 * t[:, 0], 0.1 * t[:, 1], -CROP_DEPTH * torch.exp(0.2 * t[:, 2])], dim=1),
        focal=CROP_FOCAL * (cfg.image_size / 224) * torch.exp(0.2 * parts["log_focal"][:, 0]),
        sh=ambient_sh(0.8, raw.shape[0]).to(raw) + parts["sh"],
    )


SIGMA_AT_ZERO = 0.02  # of the crop side: the confidence head's expected landmark error before training


def landmark_sigma(raw: torch.Tensor, cfg: NetworkConfig) -> torch.Tensor:
    """The confidence head's expected error of each of the 68 points: [B, P] -> [B, 68], a fraction of the crop
    side (a Laplace scale: the loss is training.losses.confidence_loss). Only for cfg.confidence."""
    return SIGMA_AT_ZERO * torch.exp(_slice(raw, cfg, "landmark_sigma").clamp(-5, 5))


def crop_points(raw: torch.Tensor, cfg: NetworkConfig) -> torch.Tensor:
    """The points head's 68 points: [B, P] -> [B, 68, 2] crop pixels (0-based centres; a zero vector is the crop's
    centre). The iBUG-68 points of the benchmark's kind: 3D landmarks projected, the hidden jaw side included, as
    the face model's landmark vertices are. Only for cfg.points."""
    return cfg.image_size * (0.5 + 0.5 * _slice(raw, cfg, "points").reshape(-1, 68, 2)) - 0.5


def points_head_output(points: torch.Tensor, cfg: NetworkConfig) -> torch.Tensor:
    """The inverse of crop_points: [..., 68, 2] crop pixels -> [..., 136] the points head's output for them."""
    return (((points + 0.5) / cfg.image_size - 0.5) / 0.5).flatten(-2)
