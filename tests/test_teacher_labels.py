"""The label maker for the AFLW crops (training/teacher_labels.py): the 68-point mirror permutation, the
augmentation maps, the reconciliation with the crops' own points, and a few crops labelled by the real teacher."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA

from backend.detect.align import IBUG68_FLIP
from training.teacher_labels import (
    AUGMENTS,
    DROP_NME,
    SAME_PLACE,
    augment_map,
    nme_on_truth,
    reconcile,
)

TEACHER = SHARED_DATA / "teacher-3ddfa"
CROPS = SHARED_DATA / "aflw-crops"


def test_the_mirror_permutation_matches_the_face_model(real_model_data):
    """Mirroring the model's neutral 68 landmarks (x -> -x) and renumbering them with IBUG68_FLIP gives the same
    points: the permutation pairs each point with its partner across the face."""
    assert np.array_equal(IBUG68_FLIP[IBUG68_FLIP], np.arange(68)) and sorted(IBUG68_FLIP) == list(range(68))
    lm = real_model_data.mean[real_model_data.landmarks_ibug68].astype(np.float64)
    mirrored = lm[IBUG68_FLIP] * np.array([-1.0, 1.0, 1.0])
    # metres: the landmark vertices are symmetric to a few mm (ICT's within 4; the jaw's top ends as moved by
    # training/landmark_vertices.py, each chosen on its own, 4.1 apart); a wrong pairing is centimetres off
    assert np.abs(mirrored - lm).max() < 0.005


def test_augment_maps_move_points_and_come_back():
    c = (120 - 1) / 2
    assert np.allclose(augment_map(1.0, 0, 0, False), [[1, 0, 0], [0, 1, 0]])
    zoom = augment_map(1.25, 3, -2, False)  # the variant's centre shows the crop's centre moved by the shift
    assert np.allclose(zoom @ [c, c, 1], [c + 3, c - 2]) and np.isclose(zoom[0, 0], 0.8)
    mirror = augment_map(1.0, 0, 0, True)
    assert np.allclose(mirror @ [0, 10, 1], [119, 10]) and np.allclose(mirror @ [c, c, 1], [c, c])
    assert AUGMENTS[0] == (1.0, 0, 0, False)  # the plain crop first: it also gives the pose


def test_reconciliation_keeps_the_ground_truth_points():
    rng = np.random.default_rng(0)
    truth = rng.uniform(20, 100, (2, 21, 2)).astype(np.float32)
    points = rng.uniform(20, 100, (2, 68, 2)).astype(np.float32)
    for a, i in SAME_PLACE.items():
        points[0, i] = truth[0, a] + 1.0  # crop 0: the teacher agrees within a pixel; crop 1: it does not
    truth[0, 11] = np.nan  # the right eye's outer corner (iBUG 45) is hidden in crop 0
    out = reconcile(points, np.full((2, 68), 0.5, np.float32), truth)
    for a, i in SAME_PLACE.items():
        if a == 11:
            assert np.array_equal(out["points"][0, i], points[0, i]) and not out["from_truth"][0, i]
        else:
            assert np.array_equal(out["points"][0, i], truth[0, a]) and out["confidence"][0, i] == 1.0
            assert out["from_truth"][0, i]
    untouched = [i for i in range(68) if i not in SAME_PLACE.values()]
    assert np.array_equal(out["points"][0, untouched], points[0, untouched])
    assert out["weight"].tolist() == [1.0, 0.0] and out["error"][1] > DROP_NME > out["error"][0]
    assert np.isnan(nme_on_truth(points[:1], np.full((1, 21, 2), np.nan)))[0]  # nothing visible: no error


@pytest.mark.skipif(not (TEACHER.is_dir() and CROPS.is_dir()), reason="the teacher or the AFLW crops are absent")
def test_a_few_crops_get_labels():
    from training.aflw_crops import load_crops
    from training.teacher import Teacher
    from training.teacher_labels import label

    _, crops, pts21, _ = load_crops(CROPS, 24)
    out = label(Teacher.load(TEACHER), crops, pts21)
    assert out["points"].shape == (24, 68, 2) and out["rotation"].shape == (24, 3, 3)
    assert ((out["confidence"] > 0) & (out["confidence"] <= 1)).all()
    kept = out["weight"] > 0
    assert kept.sum() >= 20 and np.nanmean(out["error"][kept]) < 0.06
    assert np.allclose(np.linalg.det(out["rotation"]), 1, atol=1e-4)
