"""Real training faces (the AFLW crops) as batches on the training device, with augmentation done there too.

The crops sit in memory as one uint8 tensor (19,080 x 3 x 120 x 120 = 824 MB), so a GPU never waits on JPEG
decoding. Augmentation per face, as one resampling: a random similarity (scale, rotation, shift), a mirror (the
21 points swap sides, training.aflw_crops.AFLW21_FLIP), then colour (brightness, contrast, saturation), blur and
noise. `zoom` corrects the crops' framing to the network's (see `framing_zoom`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from backend.detect.align import IBUG68_FLIP
from backend.io.errors import MlafaceError

from .aflw_crops import AFLW21_FLIP

EYE_CENTRES = (7, 10)  # AFLW-21: left and right eye centres
MOUTH_CENTRE = 18


@dataclass(frozen=True)
class AugmentConfig:
    scale: float = 0.1  # relative, uniform +-
    rotate_deg: float = 15.0
    shift: float = 0.05  # of the crop side
    flip: float = 0.5
    colour: float = 0.2
    blur: float = 0.2  # chance of a 3x3 blur (small or distant faces)
    noise: float = 0.02


def framing_scale(pts: np.ndarray) -> np.ndarray:
    """A face-size measure that holds for any yaw: the distance from the eyes' midpoint to the mouth centre.
    pts: [N, 21, 2] (NaN hidden) -> [N] pixels (NaN where a point is hidden)."""
    eyes = (pts[:, EYE_CENTRES[0]] + pts[:, EYE_CENTRES[1]]) / 2
    return np.linalg.norm(pts[:, MOUTH_CENTRE] - eyes, axis=1)


def framing_zoom(crop_pts: np.ndarray, crop_size: int, model_pts: np.ndarray, model_size: int) -> float:
    """How much larger the crops frame a face than the network's framing: median eye-mouth distance per crop
    side in the crops over the same measured on faces framed the network's way (synthetic, any pose)."""
    a = np.nanmedian(framing_scale(crop_pts)) / crop_size
    b = np.nanmedian(framing_scale(model_pts)) / model_size
    return float(a / b)


class RealFaces:
    """images: [N, h, w, 3] uint8; pts21: [N, 21, 2] float32 (NaN hidden); size: output side; zoom: see
    framing_zoom; device: where the tensors live and augmentation runs. labels68: optional 68-point labels of the
    crops (training/teacher_labels.py): (points [N, 68, 2] crop pixels, weights [N, 68] in [0, 1])."""

    def __init__(self, images: np.ndarray, pts21: np.ndarray, size: int, zoom: float = 1.0,
                 cfg: AugmentConfig = AugmentConfig(), device: str | torch.device = "cpu",
                 labels68: tuple[np.ndarray, np.ndarray] | None = None):
        self.images = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).contiguous()  # uint8
        self.visible = torch.from_numpy(np.isfinite(pts21).all(-1)).to(device)
        self.points = torch.from_numpy(np.nan_to_num(pts21)).to(device)
        self.size, self.zoom, self.cfg = size, zoom, cfg
        self.flip_index = torch.from_numpy(AFLW21_FLIP).to(device)
        self.labels68 = None
        if labels68 is not None:
            points, weights = labels68
            if len(points) != len(images):
                raise MlafaceError(f"{len(points)} 68-point labels for {len(images)} crops")
            self.labels68 = (torch.from_numpy(np.ascontiguousarray(points, np.float32)).to(device),
                             torch.from_numpy(np.ascontiguousarray(weights, np.float32)).to(device))
            self.flip68 = torch.from_numpy(IBUG68_FLIP).to(device)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, index: torch.Tensor, g: torch.Generator, augment: bool = True) -> dict[str, torch.Tensor]:
        """index: [B] crop ids -> image [B, 3, S, S] sRGB in [0, 1], lm21 [B, 21, 2] output pixels (0-based
        centres), vis21 [B, 21] bool; with labels, lm68 [B, 68, 2] and w68 [B, 68] too."""
        cfg, S, device = self.cfg, self.size, self.images.device
        B = len(index)
        src = self.images[index].float() / 255
        h, w = src.shape[-2:]
        u = (lambda *shape: torch.rand(*shape, generator=g, device=device) * 2 - 1) if augment else \
            (lambda *shape: torch.zeros(*shape, device=device))
        scale = self.zoom * (1 + cfg.scale * u(B))  # > 1: the output shows more around the face
        angle = torch.deg2rad(cfg.rotate_deg * u(B))
        shift = cfg.shift * u(B, 2) * torch.tensor([w, h], device=device)
        flip = (torch.rand(B, generator=g, device=device) < cfg.flip) if augment else \
            torch.zeros(B, dtype=torch.bool, device=device)
        # output pixel p (0-based centre) -> source pixel: c_src + shift + k * R * F * (p - c_out)
        k = scale * w / S
        cos, sin = angle.cos() * k, angle.sin() * k
        mirror = torch.where(flip, -1.0, 1.0)
        A = torch.stack([torch.stack([cos * mirror, -sin], -1), torch.stack([sin * mirror, cos], -1)], 1)  # [B,2,2]
        c_src = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=device) + shift
        c_out = (S - 1) / 2
        ys, xs = torch.meshgrid(torch.arange(S, device=device, dtype=torch.float32),
                                torch.arange(S, device=device, dtype=torch.float32), indexing="ij")
        grid_out = torch.stack([xs, ys], -1).view(1, S * S, 2) - c_out
        src_px = grid_out @ A.transpose(1, 2) + c_src[:, None]
        norm = torch.stack([(2 * src_px[..., 0] + 1) / w - 1, (2 * src_px[..., 1] + 1) / h - 1], -1)
        image = F.grid_sample(src, norm.view(B, S, S, 2), mode="bilinear", padding_mode="border", align_corners=False)

        pts, vis = self.points[index], self.visible[index]
        pts = torch.where(flip[:, None, None], pts[:, self.flip_index], pts)
        vis = torch.where(flip[:, None], vis[:, self.flip_index], vis)
        to_out = torch.linalg.inv(A).transpose(1, 2)
        out = {"lm21": (pts - c_src[:, None]) @ to_out + c_out, "vis21": vis}
        if self.labels68 is not None:
            p68, w68 = self.labels68[0][index], self.labels68[1][index]
            p68 = torch.where(flip[:, None, None], p68[:, self.flip68], p68)
            out["w68"] = torch.where(flip[:, None], w68[:, self.flip68], w68)
            out["lm68"] = (p68 - c_src[:, None]) @ to_out + c_out
        if augment:
            image = colour_jitter(image, cfg, g)
        return {"image": image.clamp(0, 1), **out}


def colour_jitter(image: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """image: [B, 3, S, S] sRGB in [0, 1] -> saturation, contrast and brightness jitter, the odd 3x3 blur, noise
    (not clamped)."""
    B, device = image.shape[0], image.device
    r = lambda *shape: torch.rand(*shape, generator=g, device=device) * 2 - 1  # noqa: E731
    grey = image.mean(1, keepdim=True)
    image = grey + (image - grey) * (1 + cfg.colour * r(B, 1, 1, 1))  # saturation
    mean = image.mean((1, 2, 3), keepdim=True)
    image = mean + (image - mean) * (1 + cfg.colour * r(B, 1, 1, 1))  # contrast
    image = image * (1 + cfg.colour * r(B, 1, 1, 1))  # brightness
    blur = torch.rand(B, 1, 1, 1, generator=g, device=device) < cfg.blur
    kernel = torch.full((3, 1, 3, 3), 1 / 9, device=device)
    blurred = F.conv2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    image = torch.where(blur, blurred, image)
    return image + cfg.noise * torch.randn(image.shape, generator=g, device=device)


def epoch_order(n: int, epoch: int, seed: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """This rank's share of a seeded permutation of n items for an epoch (a pure function of its arguments)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)[rank::world]


def batch_indices(n: int, step: int, batch: int, seed: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """The crop ids of a training step on a rank: consecutive slices of the epoch orders."""
    per_rank = n // world
    per_epoch = max(1, per_rank // batch)
    epoch, slot = divmod(step, per_epoch)
    return epoch_order(n, epoch, seed, rank, world)[slot * batch:(slot + 1) * batch]


def balanced_indices(groups: list[torch.Tensor], step: int, batch: int, seed: int, rank: int = 0,
                     world: int = 1) -> torch.Tensor:
    """Crop ids of a step drawn equally from each group (e.g. the |yaw| bins: a profile face is as likely as a
    frontal one), each group in its own seeded epochs (batch_indices). groups: [n_g] crop ids each (none empty)."""
    share = [batch // len(groups) + (i < batch % len(groups)) for i in range(len(groups))]
    return torch.cat([members[batch_indices(len(members), step, k, seed + 7919 * i, rank, world)]
                      for i, (members, k) in enumerate(zip(groups, share, strict=True))])
