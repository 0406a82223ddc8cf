"""Blinks and the jaw read from pixels (backend/clip/pixel_reading.py): the geometry helpers, and frames rendered by the
project's head renderer (a wink, an open mouth) read back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.clip.pixel_reading import CANDIDATES, PixelReader, Window, best_candidate, from_rest, sample_window
from backend.detect.align import similarity
from backend.io.colour import srgb_to_linear

pytest.importorskip("dlib", reason="the dlib extra is not installed")


def test_similarity_maps_two_points():
    """The readers warp a render's two anchors (eye or mouth corners) onto the detected ones: exactly."""
    src = np.array([[10.0, 20.0], [30.0, 20.0]])
    dst = np.array([[5.0, 5.0], [5.0, 45.0]])  # turned 90 degrees, twice as long
    warp = similarity(src, dst)
    np.testing.assert_allclose(src @ warp[:, :2].T + warp[:, 2], dst, atol=1e-9)
    np.testing.assert_allclose(warp[:, :2], [[0, -2], [2, 0]], atol=1e-9)


def test_best_candidate_refines_between_samples():
    costs = (CANDIDATES - 0.63) ** 2 + 1
    assert best_candidate(costs) == pytest.approx(0.63, abs=1e-3)
    assert best_candidate((CANDIDATES - 1.4) ** 2) == 1.0  # at the end: no parabola past it
    measured = costs.clone()
    measured[7] = float("inf")  # a neighbour not measured: the best sample as it is
    assert best_candidate(measured) == pytest.approx(0.6)


def test_window_samples_average_the_photo_pixels_they_stand_for():
    """A window 3 photo pixels to its pixel, placed on the 3-pixel grid of a 720p frame, reads each of its pixels
    (and the margin's) as the mean of its 3 x 3 photo pixels in linear RGB, though only the pixels around the
    window are converted; at the photo's edge the border repeats."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    window = Window((300.0, 150.0), 3.0, (8, 12), np.eye(2, 3))
    out = sample_window(frame, window, margin=2).numpy()
    assert out.shape == (12, 16, 3)
    linear = srgb_to_linear(torch.from_numpy(frame).float() / 255).numpy()
    for i, j in [(0, 0), (5, 7), (11, 15)]:
        y, x = 150 + (i - 2) * 3, 300 + (j - 2) * 3
        np.testing.assert_allclose(out[i, j], linear[y:y + 3, x:x + 3].mean((0, 1)), atol=1e-5)
    corner = sample_window(frame, Window((0.0, 0.0), 1.0, (4, 4), np.eye(2, 3)), margin=2).numpy()
    np.testing.assert_allclose(corner[0, 0], linear[0, 0], atol=1e-5)


def test_readings_are_measured_from_the_resting_eye():
    values = np.full(50, 0.2)
    values[10:15] = [0.4, 0.8, 1.0, 0.8, 0.4]
    values[30] = np.nan  # not read
    out = from_rest(values)
    np.testing.assert_allclose(out[10:15], [0.25, 0.75, 1.0, 0.75, 0.25])
    assert (out[:10] == 0).all() and np.isnan(out[30])
    few = np.array([np.nan, 0.5, np.nan])
    np.testing.assert_array_equal(from_rest(few), few)  # too few readings to know the rest: as read


@pytest.fixture(scope="module")
def wink(real_model_path):
    """Four frames of the project's head render: eyes open, the subject's left eye shut, both shut; the jaw open
    at 0.6 with the eyes open."""
    from backend.clip.synthetic_clip import render_clip
    from backend.io.model_file import read_model
    from backend.model.albedo_model import AlbedoModel

    data = read_model(real_model_path)
    names = [str(n) for n in data.expression_names]
    weights = np.zeros((4, len(names)), np.float32)
    weights[1:3, names.index("eyeBlinkLeft")] = 1
    weights[2, names.index("eyeBlinkRight")] = 1
    weights[3, names.index("jawOpen")] = 0.6
    truth = {"times": np.arange(4) / 25, "weights": weights, "yaw": np.radians([0, 10, -10, 15]),
             "pitch": np.zeros(4)}
    return data, render_clip(data, AlbedoModel.load(), truth)


@pytest.mark.slow
def test_a_wink_and_an_open_mouth_are_read(wink, real_model_path):
    """The head is reconstructed from the open frame; the other frames are read with that head's fit to them
    (landmarks only, as a clip's frames are). The subject's left eye is on the image's right. The jaw: a shut
    mouth is not read (no opening to take the inside's colour from), an open one is (0.40 here for 0.6: one photo's
    identity; on the test clip's 8 keyframes the pixels lift the jaw's peak from 0.42 to 0.56, test_clips.py)."""
    from backend.detect.landmarks import detect_faces
    from backend.reconstruct.fitting import FitConfig, fit, start_params
    from backend.reconstruct.pipeline import ReconstructOptions, Reconstructor

    data, frames = wink
    rec = Reconstructor(ReconstructOptions(model=str(real_model_path), texture_size=256, device="cpu"))
    faces = [detect_faces(rec.provider, f, "wink", False)[0] for f in frames]
    opened, blends = rec.fit_faces([frames[0]], [faces[0]], False, rec.options.fit_config(w_expression_l1=0.03))
    head = rec.face_result(opened, blends[0], 0, frames[0], faces[0], "wink", 0, False, {})
    reader = PixelReader(head, frames[0], data.landmarks_ibug68)
    identity = torch.from_numpy(head.identity)[None].expand(4, -1)
    points = [f.landmarks for f in faces]
    cfg = FitConfig(steps=60, rigid_steps=30, light=False, w_expression_l1=0.03)
    init = start_params(rec.model, points, [f.shape[:2] for f in frames], cfg, identity=identity)
    fitted = fit(rec.model, list(frames), points, cfg, init, fixed_identity=True).params
    read = [reader.read(frames[i], faces[i].landmarks, fitted.expression[i].numpy(), fitted.rotation[i].numpy(),
                        fitted.translation[i].numpy()) for i in range(4)]
    assert read[0]["eyeBlinkLeft"] < 0.2 and read[0]["eyeBlinkRight"] < 0.2, read[0]
    assert read[1]["eyeBlinkLeft"] > 0.7 and read[1]["eyeBlinkRight"] < 0.2, read[1]
    assert read[2]["eyeBlinkLeft"] > 0.7 and read[2]["eyeBlinkRight"] > 0.7, read[2]
    assert read[0]["jawOpen"] is None and read[3]["eyeBlinkLeft"] < 0.2 and read[3]["jawOpen"] > 0.3

    # the reader renders only its focus's box of a window: a part of a window renders as the whole does there
    from backend.clip.pixel_reading import SUPERSAMPLE, feature_window

    args = fitted.expression[1:2], fitted.rotation[1:2], fitted.translation[1:2]
    window = feature_window(points[1], "left eye", frames[1].shape[:2],
                            reader.rig.anchors("left eye", *(a[0].numpy() for a in args)))
    whole = reader.rig.render("left eye", *args, window)
    part = reader.rig.render("left eye", *args, window.part((5, 20), (9, 40)))
    S = SUPERSAMPLE
    assert part[3].shape == (1, 15 * S, 31 * S) and part[3].any()
    for w, p in zip(whole, part, strict=True):
        torch.testing.assert_close(p, w[:, 5 * S:20 * S, 9 * S:40 * S], atol=1e-4, rtol=0)


def test_a_window_outside_the_photo_is_not_read():
    from backend.clip.pixel_reading import feature_window

    landmarks = np.zeros((68, 2))
    landmarks[[36, 39, 42, 45, 48, 54]] = [[-5, 50], [15, 50], [40, 50], [60, 50], [30, 90], [50, 90]]
    # the right eye leaves the photo on the left; the mouth's window (below its corners) at the bottom
    assert feature_window(landmarks, "right eye", (100, 100), landmarks[[36, 39]]) is None
    assert feature_window(landmarks, "left eye", (100, 100), landmarks[[42, 45]]) is not None
    assert feature_window(landmarks, "mouth", (100, 100), landmarks[[48, 54]]) is None
