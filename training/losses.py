"""Training losses. Landmarks and images are in crop pixels of side S; every term is scaled to be about 1 for a
poor prediction and to reach 0 for a perfect one, so the weights (LossWeights, set in the config's [loss] table)
say how much each matters.

- landmark: mean distance / S over visible points (68 and 21 on synthetic faces, AFLW's visible 21 on real ones,
  the teacher's 68 weighted by their confidence);
- points (variants with a points head): the same landmark distance for the head's 68 points, against the
  synthetic faces' exact 68 and the teacher's (confidence-weighted) on real crops;
- confidence (variants with a confidence head): each point's predicted error against its error (confidence_loss);
- photometric: mean absolute sRGB difference between the rendered face (albedo model x SH light, through our
  differentiable renderer) and the image, over the pixels the face covers;
- vertex: mean camera-space vertex distance / 10 cm (synthetic: the whole of shape and pose at once);
- parameters (synthetic): expression L1, identity / texture / light squared error, log focal ratio;
- priors (real): identity, texture squared; expression L1 (most shapes are off in a face).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backend.io.colour import linear_to_srgb
from backend.model.params import FaceParams

VERTEX_UNIT = 0.1  # metres


@dataclass(frozen=True)
class LossWeights:
    landmark: float = 1.0
    points: float = 1.0
    photometric: float = 0.5
    vertex: float = 1.0
    expression: float = 0.5
    identity: float = 0.02
    texture: float = 0.02
    light: float = 0.1
    focal: float = 0.1
    confidence: float = 0.1
    prior_identity: float = 1e-4
    prior_expression: float = 1e-3
    prior_texture: float = 1e-4


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, visible: torch.Tensor, size: int) -> torch.Tensor:
    """pred, target: [B, L, 2] pixels; visible: [B, L] bool -> mean distance / size over visible points."""
    d = (pred.float() - target.float()).norm(dim=-1) / size
    v = visible.float()
    return (d * v).sum() / v.sum().clamp(min=1)


def confidence_loss(sigma: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                    size: int) -> torch.Tensor:
    """The confidence head against the error it predicts: sigma [B, L] a fraction of the crop side; pred, target
    [B, L, 2] pixels; weight [B, L]. A Laplace likelihood of the (detached) error d, shifted to 0 at sigma = d:
    d / sigma + log(sigma / d) - 1, so it never moves the points, only learns how far off they are."""
    d = ((pred.detach().float() - target.float()).norm(dim=-1) / size).clamp(min=1e-4)
    nll = d / sigma + torch.log(sigma / d) - 1
    w = weight.float()
    return (nll * w).sum() / w.sum().clamp(min=1)


def photometric_loss(rendered: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """rendered: [B, 3, S, S] linear RGB; image: [B, 3, S, S] sRGB in [0, 1]; mask: [B, S, S] bool."""
    m = mask[:, None].float()
    diff = (linear_to_srgb(rendered.float()) - image.float()).abs() * m
    return diff.sum() / (m.sum() * 3).clamp(min=1)


def vertex_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred, target: [B, V, 3] metres -> mean distance / VERTEX_UNIT."""
    return (pred.float() - target.float()).norm(dim=-1).mean() / VERTEX_UNIT


def parameter_losses(p: FaceParams, truth: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Synthetic faces: the network's parameters against the ones the face was rendered from."""
    k = truth["texture"].shape[1]
    return {
        "expression": (p.expression - truth["expression"]).abs().mean(),
        "identity": (p.identity - truth["identity"]).square().mean(),
        "texture": (p.texture[:, :k] - truth["texture"]).square().mean(),
        "light": (p.sh - truth["sh"]).square().mean(),
        "focal": torch.log(p.focal / truth["focal"]).square().mean(),
    }


def prior_losses(p: FaceParams) -> dict[str, torch.Tensor]:
    return {"prior_identity": p.identity.square().sum(1).mean(),
            "prior_expression": p.expression.abs().sum(1).mean(),
            "prior_texture": p.texture.square().sum(1).mean()}


def total(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Weighted sum; a term named "landmark_x" uses the weight "landmark"."""
    return sum(getattr(weights, name.split("_")[0] if not name.startswith("prior") else name) * value
               for name, value in terms.items())
