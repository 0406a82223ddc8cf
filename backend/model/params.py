"""FaceParams: the face model's state for a batch of faces seen by one camera each. The network predicts it (in its
crop camera), the fit starts from it and returns it (in the photo camera), training compares it with the truth.

Units and frames: the face model's (io/model_file.py) and render/camera.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from ..render.camera import to_camera
from .face_model import FaceModel
from .pose import axis_angle_to_matrix


@dataclass(frozen=True)
class FaceParams:
    """identity: [B, K] coefficients (about N(0, 1)); expression: [B, E] shape-key weights in [0, 1];
    rotation: [B, 3, 3] model -> camera; translation: [B, 3] metres, camera space (z < 0);
    focal: [B] pixels of the image the camera sees (the network's crop, or the photo); sh: [B, 27] camera-space
    light (render/shading.py); texture: [B, T] albedo-model coefficients, None where nothing predicted them."""

    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    focal: torch.Tensor
    sh: torch.Tensor
    texture: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.identity.shape[0]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> FaceParams:
        """fn applied to every tensor (e.g. `lambda t: t.detach()`)."""
        return replace(self, **{f.name: fn(getattr(self, f.name)) for f in fields(self)
                                if getattr(self, f.name) is not None})

    def rows(self, index) -> FaceParams:
        """Some of the batch's faces: index is a slice, a list or a [B] bool or int tensor."""
        return self.map(lambda t: t[index])

    def camera_vertices(self, model: FaceModel) -> torch.Tensor:
        """[B, V, 3] the expressed faces in camera space, metres."""
        return to_camera(model.vertices(self.identity, self.expression), self.rotation, self.translation)

    def crop_to_photo(self, to_photo: np.ndarray, image_sizes: list[tuple[int, int]], crop_size: int,
                      focal: torch.Tensor, pivot: torch.Tensor | None = None) -> FaceParams:
        """The same heads seen by the photo cameras, from parameters in the cameras of crops of those photos.

        to_photo: [B, 2, 3] similarities taking crop pixels to photo pixels (0-based centres; detect/align.py);
        image_sizes: B x (H, W) of the photos; crop_size: the crops' side; focal: [B] the photo cameras' focal
        lengths (principal points at the photo centres); pivot: [B, 3] model-space points (metres) that keep their
        pixel and their size in the photo when the focal length changes (default the model's origin; pass the
        face's landmark centre: ICT's origin sits 9 cm behind it, and holding the origin would grow the face by
        several percent when the focal length shrinks).

        A crop is (nearly) what a camera turned towards the crop's centre sees, with the crop's scale as its focal
        length and its in-plane rotation as a turn about its axis: the head is moved from that camera into the
        photo's. Then the focal length becomes `focal`, the pivot keeping its place in the photo (its depth
        scales with the focal length) and the face turned to the camera as before."""
        dtype, device = self.rotation.dtype, self.rotation.device
        A = torch.as_tensor(np.asarray(to_photo)[:, :, :2], dtype=dtype, device=device)  # [B, 2, 2] s * R(theta)
        b = torch.as_tensor(np.asarray(to_photo)[:, :, 2], dtype=dtype, device=device)
        s = torch.linalg.det(A).abs().sqrt()
        cos, sin = A[:, 0, 0] / s, A[:, 1, 0] / s
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        # theta turns the crop clockwise on screen (y down): seen from the camera, a turn by -theta about its z
        spin = torch.stack([cos, sin, zero, -sin, cos, zero, zero, zero, one], 1).view(-1, 3, 3)
        centre = torch.tensor([[w / 2, h / 2] for h, w in image_sizes], dtype=dtype, device=device)
        focal_crop = s * self.focal  # photo pixels
        middle = (A @ torch.full((len(A), 2, 1), (crop_size - 1) / 2, dtype=dtype, device=device))[..., 0] + b + 0.5
        ray = torch.cat([(middle - centre) / focal_crop[:, None] * torch.tensor([1.0, -1.0], device=device),
                         -torch.ones_like(s)[:, None]], 1)
        turn = _towards(ray) @ spin  # the crop's camera -> the photo's
        rotation, t = turn @ self.rotation, (turn @ self.translation[:, :, None])[..., 0]
        # the photo's focal length: the pivot stays on its pixel, its depth scales with the focal length
        pivot = torch.zeros_like(t) if pivot is None else pivot.to(dtype)
        at = (rotation @ pivot[:, :, None])[..., 0] + t
        focal = torch.as_tensor(focal, dtype=dtype, device=device)
        depth = -at[:, 2]
        pixel = centre + focal_crop[:, None] * torch.stack([at[:, 0], -at[:, 1]], 1) / depth[:, None]
        depth = depth * focal / focal_crop
        offset = (pixel - centre) * depth[:, None] / focal[:, None]
        moved = torch.stack([offset[:, 0], -offset[:, 1], -depth], 1)
        rotation = _towards(moved) @ _towards(at).transpose(1, 2) @ rotation
        translation = moved - (rotation @ pivot[:, :, None])[..., 0]
        return replace(self, rotation=rotation, translation=translation, focal=focal)


def _towards(direction: torch.Tensor) -> torch.Tensor:
    """[B, 3] -> [B, 3, 3] the smallest rotation taking the view axis (0, 0, -1) onto each direction."""
    d = torch.nn.functional.normalize(direction, dim=1)
    axis = torch.linalg.cross(torch.tensor([0.0, 0.0, -1.0], dtype=d.dtype, device=d.device).expand_as(d), d, dim=1)
    sin, cos = axis.norm(dim=1), -d[:, 2]
    return axis_angle_to_matrix(axis * (torch.atan2(sin, cos) / sin.clamp(min=1e-12))[:, None])
