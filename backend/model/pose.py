"""Head rotations: the parameterisations the network, the fit and the synthetic data use, all giving [B, 3, 3]
model -> camera rotations (camera_point = rotation @ model_point + translation, render/camera.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def axis_angle_to_matrix(w: torch.Tensor) -> torch.Tensor:
    """[B, 3] axis * angle -> [B, 3, 3] (Rodrigues), smooth at zero."""
    theta = w.norm(dim=-1, keepdim=True).clamp(min=1e-8)[..., None]
    k = w / theta[..., 0]
    K = torch.zeros(w.shape[0], 3, 3, dtype=w.dtype, device=w.device)
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K = K - K.transpose(1, 2)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(K)
    return eye + torch.sin(theta) * K + (1 - torch.cos(theta)) * (K @ K)


def rotation_from_6d(x: torch.Tensor) -> torch.Tensor:
    """[B, 6] -> [B, 3, 3] rotation matrices whose first two columns come from x by Gram-Schmidt (Zhou et al.)."""
    a, b = x[:, :3], x[:, 3:]
    c0 = F.normalize(a, dim=-1)
    c1 = F.normalize(b - (c0 * b).sum(-1, keepdim=True) * c0, dim=-1)
    return torch.stack([c0, c1, torch.linalg.cross(c0, c1, dim=-1)], dim=-1)


def euler_to_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Radians [B] -> [B, 3, 3] model -> camera: roll about z, then yaw about y, then pitch about x (applied
    to the head as R = Rz @ Ry @ Rx). Positive yaw turns the face towards the camera's right (image right)."""
    cx, sx, cy, sy, cz, sz = pitch.cos(), pitch.sin(), yaw.cos(), yaw.sin(), roll.cos(), roll.sin()
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx
