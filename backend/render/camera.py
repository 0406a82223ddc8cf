"""The pinhole camera, one convention for all of mlaface.

Camera space: right-handed, metres, +x right, +y up, the camera at the origin looking down -z (OpenGL, glTF and
Blender cameras). A face in front of the camera has negative z; `depth = -z` is positive.

Pixel space: x right, y down, origin at the top-left corner of the image; pixel (row i, column j) covers
[j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5). A camera-space point projects to

    x_px = cx + focal * x / depth,    y_px = cy - focal * y / depth,    depth = -z

with the principal point (cx, cy) at the image centre (W / 2, H / 2) unless given. `focal` is in pixels; it comes
from the field of view across the longer image side (Blender's "auto" sensor fit), so a Blender camera with the
same field of view and resolution sees the same picture.
"""

from __future__ import annotations

import math

import torch

from ..io.errors import MlafaceError


def focal_from_fov(image_size: tuple[int, int], fov_deg: float) -> float:
    """Focal length in pixels for an (H, W) image whose longer side spans `fov_deg` degrees."""
    if not 0 < fov_deg < 180:
        raise MlafaceError(f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    return 0.5 * max(image_size) / math.tan(math.radians(fov_deg) / 2)


def fov_from_focal(image_size: tuple[int, int], focal: float) -> float:
    """The inverse of `focal_from_fov`: degrees across the longer side."""
    return math.degrees(2 * math.atan(0.5 * max(image_size) / focal))


def project(verts_cam: torch.Tensor, focal: torch.Tensor | float, image_size: tuple[int, int],
            principal: torch.Tensor | None = None) -> torch.Tensor:
    """Camera space to pixel space.

    verts_cam: [B, V, 3] metres, camera space; focal: pixels, a float or [B];
    principal: [B, 2] pixels (cx, cy), default the image centre
    -> [B, V, 3] (x_px, y_px, depth) with depth = -z in metres (positive in front of the camera).
    """
    H, W = image_size
    focal = torch.as_tensor(focal, dtype=verts_cam.dtype, device=verts_cam.device).reshape(-1, 1)
    if principal is None:
        principal = verts_cam.new_tensor([W / 2, H / 2]).expand(verts_cam.shape[0], 2)
    depth = -verts_cam[..., 2]
    x = principal[:, None, 0] + focal * verts_cam[..., 0] / depth
    y = principal[:, None, 1] - focal * verts_cam[..., 1] / depth
    return torch.stack([x, y, depth], dim=-1)


def to_camera(verts: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Model space to camera space, camera_point = rotation @ model_point + translation (io/face_result.py).

    verts: [B, V, 3] metres (or [V, 3]); rotation: [B, 3, 3] (or [3, 3]); translation: [B, 3] metres (or [3])
    -> [B, V, 3] metres, camera space. torch tensors or numpy arrays alike.
    """
    return verts @ rotation.swapaxes(-1, -2) + translation[..., None, :]


def to_landmark_pixels(verts_cam: torch.Tensor, focal: torch.Tensor | float, image_size: tuple[int, int],
                       principal: torch.Tensor | None = None) -> torch.Tensor:
    """Camera space to landmark pixels: 0-based pixel centres, (0, 0) the centre of the top-left pixel, the
    convention of detected landmarks (detect/landmarks.py) and crops (detect/align.py); `project`'s pixel space
    less half a pixel. Arguments as `project` -> [B, V, 2]."""
    return project(verts_cam, focal, image_size, principal)[..., :2] - 0.5


def crop_camera(image_size: tuple[int, int], to_photo) -> tuple[float, tuple[float, float]]:
    """The photo camera seen through a square, axis-aligned crop (backend.align.crop_from_box), whose pixel (x, y)
    shows photo pixel to_photo @ (x, y, 1) in 0-based centres: returns (k, principal), k photo pixels per crop
    pixel and the principal point (the photo centre) in the crop's pixel space. Project with focal / k."""
    H, W = image_size
    k = float(to_photo[0, 0])
    return k, ((W / 2 - float(to_photo[0, 2]) - 0.5) / k + 0.5, (H / 2 - float(to_photo[1, 2]) - 0.5) / k + 0.5)


def unproject(pixels: torch.Tensor, depth: torch.Tensor, focal: torch.Tensor | float,
              image_size: tuple[int, int]) -> torch.Tensor:
    """The inverse of `project` with the principal point at the image centre.

    pixels: [B, N, 2] (x_px, y_px); depth: [B, N] metres -> [B, N, 3] camera space, metres.
    """
    H, W = image_size
    focal = torch.as_tensor(focal, dtype=pixels.dtype, device=pixels.device).reshape(-1, 1)
    x = (pixels[..., 0] - W / 2) * depth / focal
    y = -(pixels[..., 1] - H / 2) * depth / focal
    return torch.stack([x, y, -depth], dim=-1)
