"""The choice of the model's landmark vertices (training/landmark_vertices.py) on synthetic labels with the real face
model: points drawn from a known other vertex are traced back to it."""

from __future__ import annotations

import math

import torch

from backend.model.face_model import FaceModel
from backend.model.params import FaceParams
from backend.model.pose import euler_to_matrix
from backend.render.camera import focal_from_fov, to_landmark_pixels
from training.landmark_vertices import CROP, choose

MOVED = 21  # the right brow's inner end


def test_points_drawn_from_another_vertex_lead_back_to_it(real_model_path):
    full = FaceModel.load(real_model_path)
    mean = full.mean.view(-1, 3)
    start = full.landmarks_ibug68.clone()
    region = full.face_region
    aim = mean[start[MOVED]] + torch.tensor([-0.006, 0.003, 0.0])  # 6 mm towards the temple, 3 mm up
    target = region[(mean[region] - aim).norm(dim=1).argmin()]
    truth = start.clone()
    truth[MOVED] = target

    g = torch.Generator().manual_seed(0)
    n = 36
    yaw = torch.linspace(-70, 70, n)
    params = FaceParams(identity=0.7 * torch.randn(n, full.n_identity, generator=g),
                        expression=torch.zeros(n, full.n_expression),
                        rotation=euler_to_matrix(torch.zeros(n), torch.deg2rad(yaw), torch.zeros(n)),
                        translation=torch.tensor([0.0, 0.0, -0.6]).expand(n, 3),
                        focal=torch.full((n,), focal_from_fov((CROP, CROP), 40.0)), sh=torch.zeros(n, 27))
    with torch.no_grad():
        points = to_landmark_pixels(params.camera_vertices(full)[:, truth], params.focal, (CROP, CROP))

    points[:, 30] = float("nan")  # the nose tip never counted: it stays where it is
    chosen = choose(full, points, log=lambda line: None)
    assert chosen[30] == start[30]
    assert float((mean[chosen[MOVED]] - mean[target]).norm()) < 0.0015  # found again, within 1.5 mm
    others = [k for k in range(68) if k != MOVED]
    assert (chosen[others] == start[others]).float().mean() > 0.9  # points drawn from their own vertices stay there
    assert math.isclose(float((mean[start[MOVED]] - mean[target]).norm()), 0.0067, abs_tol=0.002)
