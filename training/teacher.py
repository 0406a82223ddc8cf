"""The landmark teacher for training labels: 3DDFA_V2's MobileNet x0.5 (`../shared/data/teacher-3ddfa`: MIT code and
weights; its 68-point bases derive from the Basel Face Model, academic use), loaded and decoded from the facts in
that folder's README. Used to label training crops only: never shipped, never a test's oracle.

    teacher = Teacher.load("../shared/data/teacher-3ddfa")
    points, pose = teacher.predict(crops)     # crops [B, 120, 120, 3] uint8 RGB -> [B, 68, 3], [B, 3, 4]

Points are in the crop's pixels (0-based centres; x right, y down; z towards the camera, pixel units).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from backend.io.errors import MlafaceError

SIZE = 120
WIDTHS = [(16, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2),
          *[(256, 256, 1)] * 5, (256, 512, 2), (512, 512, 1)]  # MobileNet v1 x0.5: (in, out, stride)
BLOCKS = ["dw2_1", "dw2_2", "dw3_1", "dw3_2", "dw4_1", "dw4_2", "dw5_1", "dw5_2", "dw5_3", "dw5_4", "dw5_5", "dw5_6",
          "dw6"]


class _DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin)
        self.conv_sep = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn_sep(self.conv_sep(torch.relu(self.bn_dw(self.conv_dw(x))))))


class MobileNetTeacher(nn.Module):
    """image [B, 3, 120, 120] BGR, (v - 127.5) / 128 -> [B, 62] normalised 3DMM parameters."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        for name, (cin, cout, stride) in zip(BLOCKS, WIDTHS, strict=True):
            setattr(self, name, _DepthwiseSeparable(cin, cout, stride))
        self.fc_param = nn.Linear(512, 62)
        self.fc_lm = nn.Linear(512, 136)  # the checkpoint's landmark branch, unused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        for name in BLOCKS:
            x = getattr(self, name)(x)
        return self.fc_param(x.mean((2, 3)))


class Teacher:
    """The network with its output normalisation and the 68-point bases (mean [204], shape [204, 40], expression
    [204, 10], point-major)."""

    def __init__(self, net: MobileNetTeacher, mean: np.ndarray, std: np.ndarray, u: np.ndarray, w_shp: np.ndarray,
                 w_exp: np.ndarray, device: str | torch.device = "cpu"):
        self.net = net.to(device).eval()
        self.device = torch.device(device)
        f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=device)  # noqa: E731
        self.mean, self.std = f32(mean), f32(std)
        self.u, self.w_shp, self.w_exp = f32(u).reshape(-1), f32(w_shp), f32(w_exp)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> Teacher:
        folder = Path(folder)
        files = ["mb05_120x120.pth", "param_mean_std_62d_120x120.npz", "u_base.txt", "w_shp_base.txt",
                 "w_exp_base.txt"]
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise MlafaceError(f"{folder}: the teacher's files are missing ({', '.join(missing)})")
        ckpt = torch.load(folder / files[0], map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
        net = MobileNetTeacher()
        net.load_state_dict(state)
        stats = np.load(folder / files[1])
        u = np.loadtxt(folder / files[2])
        w_shp = np.loadtxt(folder / files[3]).reshape(204, 40)
        w_exp = np.loadtxt(folder / files[4]).reshape(204, 10)
        return cls(net, stats["mean"], stats["std"], u, w_shp, w_exp, device)

    @torch.no_grad()
    def predict(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """crops: [B, 120, 120, 3] uint8 RGB -> (points [B, 68, 3] crop pixels: x, y 0-based, y down, z towards the
        camera; pose [B, 3, 4], the scaled rotation and offset [R | t] of the decoded 3DMM, y up)."""
        x = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).to(self.device).permute(0, 3, 1, 2).float()
        p = self.net((x - 127.5) / 128) * self.std + self.mean
        pose = p[:, :12].reshape(-1, 3, 4)
        shape = self.u + p[:, 12:52] @ self.w_shp.T + p[:, 52:62] @ self.w_exp.T  # [B, 204]
        X = pose[:, :, :3] @ shape.reshape(-1, 68, 3).transpose(1, 2) + pose[:, :, 3:]  # [B, 3, 68], y up
        points = torch.stack([X[:, 0] - 1, SIZE - X[:, 1], X[:, 2] - 1], -1)
        return points.cpu().numpy(), pose.cpu().numpy()


def roi_box(points68: np.ndarray) -> tuple[float, float, float, float]:
    """The teacher's square crop around 68 points [68, 2]: the points' box made square (half-side r = max(w, h) / 2)
    then a square of side sqrt(8) * r about the same centre -> (sx, sy, ex, ey) photo pixels."""
    lo, hi = points68.min(0), points68.max(0)
    centre, r = (lo + hi) / 2, (hi - lo).max() / 2
    half = np.sqrt(8) * r / 2
    return float(centre[0] - half), float(centre[1] - half), float(centre[0] + half), float(centre[1] + half)
