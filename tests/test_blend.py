"""The pipeline's rule for the points a fit follows (reconstruct/blend.py), on a synthetic turned face with the
real face model and the real fit; the detector box's framing; the fit-quality ranking of a batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.detect.align import DETECTOR_BOX_SIDE, box_from_detection
from backend.detect.landmarks import far_contour
from backend.model.face_model import FaceModel
from backend.model.params import FaceParams
from backend.model.pose import euler_to_matrix
from backend.reconstruct.batch import worst_fits
from backend.reconstruct.blend import blend_landmarks, detector_error, face_size
from backend.reconstruct.fitting import FitConfig, fit, landmark_weights, start_params
from backend.reconstruct.pipeline import detector_to_3d
from backend.render.camera import focal_from_fov, to_landmark_pixels

SIZE = (480, 640)


def nme(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean() / face_size(b))


@pytest.fixture(scope="module")
def turned(real_model_path):
    """A random identity with a smile, turned 55 degrees, in a 640 x 480 photo: (model, params, true 68 points)."""
    model = FaceModel.load(real_model_path)
    g = torch.Generator().manual_seed(4)
    expression = torch.zeros(1, model.n_expression)
    expression[0, [i for i, n in enumerate(model.expression_names) if n.startswith("mouthSmile")]] = 0.6
    p = FaceParams(identity=torch.randn(1, model.n_identity, generator=g), expression=expression,
                   rotation=euler_to_matrix(*(torch.tensor([math.radians(a)]) for a in (8.0, 55.0, -5.0))),
                   translation=torch.tensor([[0.02, 0.01, -0.9]]),
                   focal=torch.tensor([focal_from_fov(SIZE, 40.0)]), sh=torch.zeros(1, 27))
    truth = to_landmark_pixels(model.landmarks(p.camera_vertices(model)), p.focal, SIZE)[0].numpy()
    return model, p, truth


def test_a_corrupted_detection_on_a_turned_face_still_fits(turned):
    """The network's points carry 2% noise (of the face size) and say so; the detector's are corrupted as dlib's are
    on a turned face (the contour slid 30% onto the silhouette, 25 of the inner points 25% off). At 55 degrees
    dlib's expected error is 45% on the contour and 37% inside (DLIB_ERROR, interpolated towards "no information"
    beyond 60), so every detected point gets at most (1 / 0.37^2) / (1 / 0.37^2 + 1 / 0.02^2) = 0.3% of the weight.
    The bound: the blend is off by at most the network's error (the mean length of a 2D Gaussian of 2% a side:
    2% x sqrt(pi / 2) = 2.5%) plus the detector's share times its error, on average below 0.3% x 30% = 0.1%; the
    fit, which follows the blend through the model's shapes and priors, no worse than the blend. Fitting the
    detection itself ends far off (above 6%), so the rule is what holds the face in place."""
    model, _, truth = turned
    rng = np.random.default_rng(0)
    size = face_size(truth)
    predicted = truth + rng.normal(0, 0.02 * size, truth.shape)
    detected = truth.copy()
    detected[:17] += np.array([0.3, 0.05]) * size
    bad = rng.choice(np.arange(17, 68), 25, replace=False)
    detected[bad] += rng.normal(0, 1, (25, 2)) / math.sqrt(2) * 0.25 * size
    b = blend_landmarks(detected, predicted, np.full(68, 0.02 * size), 55.0)
    assert b.detector_share.max() < 0.004
    assert b.disagreement > 0.05  # the fit-quality score sees the disagreement
    assert nme(predicted, truth) < 0.027 and nme(b.targets, truth) < nme(predicted, truth) + 0.001

    blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (*SIZE, 3))
    cfg = FitConfig(steps=200, light=False)
    blended = fit(model, [blank], [b.targets.astype(np.float32)], cfg.for_3d_points(),
                  start_params(model, [b.targets], [SIZE], cfg))
    raw = fit(model, [blank], [detected.astype(np.float32)], cfg, start_params(model, [detected], [SIZE], cfg))
    assert nme(blended.landmarks[0].numpy(), truth) < nme(b.targets, truth)
    assert nme(raw.landmarks[0].numpy(), truth) > 0.06


def test_on_a_frontal_face_the_detector_leads_the_inner_points(turned):
    model, _, truth = turned
    size = face_size(truth)
    b = blend_landmarks(truth + 0.01 * size, truth, np.full(68, 0.05 * size), 5.0)
    assert (b.detector_share[17:] > 0.6).all() and (b.detector_share[:17] < b.detector_share[17:].min()).all()
    no_detection = blend_landmarks(None, truth, None, 5.0)
    assert np.array_equal(no_detection.targets, truth) and math.isnan(no_detection.disagreement)
    assert detector_error(-70.0)[30] > 3 * detector_error(10.0)[30]  # signed yaw, by |yaw|


def test_the_far_contour_of_a_turned_face_is_not_taken_from_the_detector(turned):
    model, p, truth = turned
    yaw = math.degrees(math.asin(float(p.rotation[0, 0, 2])))
    far = far_contour(yaw)
    near = far_contour(-yaw)
    depth = -p.camera_vertices(model)[0, model.landmarks_ibug68, 2].numpy()  # metres from the camera
    assert depth[far].mean() > depth[near].mean() + 0.02  # the side far_contour names is the one turned away
    assert far_contour(10.0) is None and far_contour(-10.0) is None
    size = face_size(truth)
    silhouette = truth.copy()
    silhouette[:17] += [0.08 * size, 0.0]  # a detector's contour along the silhouette, off the face's points
    b = blend_landmarks(silhouette, truth, np.full(68, 0.05 * size), yaw)
    assert (b.detector_share[far] == 0).all() and np.allclose(b.targets[far], truth[far])
    assert (b.detector_share[near] > 0).all()  # the near side's contour is still the detector's to share
    frontal = blend_landmarks(silhouette, truth, np.full(68, 0.05 * size), 10.0)
    assert (frontal.detector_share[:17] > 0).all()


def test_a_detectors_points_move_into_the_3d_convention(turned):
    model, p, truth = turned  # truth: the projected "ibug68" vertices
    detected = to_landmark_pixels(model.landmarks(p.camera_vertices(model), "detector68"), p.focal, SIZE)[0].numpy()
    assert np.linalg.norm(detected - truth, axis=1).max() > 2  # pixels: the two conventions differ (brows, nose)
    np.testing.assert_allclose(detected + detector_to_3d(model, p, [SIZE])[0], truth, atol=1e-3)


def test_the_contour_rule_is_for_detected_points_only():
    turned = euler_to_matrix(torch.zeros(1), torch.tensor([math.radians(40.0)]), torch.zeros(1))
    w = landmark_weights(turned, 0.5)
    assert (w[0, 9:17] == 0).all() and (w[0, :8] == 0.5).all()
    assert (landmark_weights(turned, 1.0, far_contour=False) == 1).all()
    assert FitConfig().for_3d_points().w_contour == 1.0 and not FitConfig().for_3d_points().far_contour
    # a detector's points are fitted with the vertices a detector marks, 3D points with the benchmark's
    assert FitConfig().landmark_set == "detector68" and FitConfig().for_3d_points().landmark_set == "ibug68"
    assert FitConfig(landmark_set="aflw21").for_3d_points().landmark_set == "aflw21"


def test_the_detector_box_frames_the_points():
    x0, y0, x1, y1 = box_from_detection((100.0, 50.0, 300.0, 250.0))
    assert x1 - x0 == pytest.approx(200 * DETECTOR_BOX_SIDE) and y1 - y0 == pytest.approx(200 * DETECTOR_BOX_SIDE)
    assert (x0 + x1) / 2 == pytest.approx(200) and (y0 + y1) / 2 > 150  # the points sit low in dlib's box


def test_the_batch_summary_names_the_worst_fits():
    def event(name, score, gap):
        return {"photo": f"/photos/{name}.jpg", "face_index": 0,
                "fit_quality": {"score": score, "detector_network_gap": gap, "detector_share": 0.5, "residual": 0.01}}

    lines = worst_fits([event("good", 0.9, 0.01), event("bad", 0.1, 0.3), event("plain", 0.5, None)], count=2)
    assert lines[0].startswith("bad.jpg face 0: score 0.10 (detector and network 30.0% apart")
    assert lines[1].startswith("plain.jpg face 0: score 0.50 (no network") and len(lines) == 2
