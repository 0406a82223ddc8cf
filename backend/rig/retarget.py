"""A source's curves -> a rig's shape-key values and head rotation (numpy only; the add-on builds the keyframes).

A source is an AnimationTrack (backend/io/animation.py): a clip's track, a Live Link Face CSV read into one, or a
single photo's expression as a one-frame track. Its expression names are matched to the vocabulary
(backend/rig/names.py); a target key takes, in order of preference:
    the same shape;
    for a whole split shape (browInnerUp, cheekPuff) on a 52-shape rig, the mean of the source's two halves (fold);
    for a half (browInnerUpLeft) on a split rig, the source's whole shape (spread).
Each link then maps value = offset + scale * strength * source, clipped to the key's slider range.

Axes: the track's rotations are camera-space, y up (backend/render/camera.py). Blender's world is z up with a
character facing -y (its front view), the camera-space frame turned +90 degrees about x: a rotation R there is
C R C^T in Blender (C below). R = identity is a head facing the camera, that is a character facing front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .names import SIDES, SPLIT_SHAPES, arkit_name, split_whole

# y-up camera space -> Blender's z-up world: (x, y, z) -> (x, -z, y), a +90 degree turn about x.
Z_UP_FROM_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass
class ShapeLink:
    """One target shape key and what drives it: source is a vocabulary name, "" where nothing does."""

    target: str
    source: str = ""
    scale: float = 1.0
    offset: float = 0.0


def source_columns(names) -> dict[str, int]:
    """A source's expression names [E] -> {vocabulary name: column}; names outside the vocabulary are left out."""
    columns = {}
    for e, name in enumerate(names):
        shape = arkit_name(str(name))
        if shape is not None:
            columns.setdefault(shape, e)
    return columns


def _columns_for(shape: str, columns: dict[str, int]) -> list[int]:
    """The source columns a vocabulary shape reads (averaged): the same shape, else a whole's two halves (fold),
    else a half's whole (spread); [] where the source has none."""
    if shape in columns:
        return [columns[shape]]
    if shape in SPLIT_SHAPES and all(shape + side in columns for side in SIDES):
        return [columns[shape + side] for side in SIDES]
    whole = split_whole(shape)
    if whole is not None and whole in columns:
        return [columns[whole]]
    return []


def match_links(target_names) -> list[ShapeLink]:
    """A link per target shape key, in the rig's order: its ARKit shape by name, or none. Whether a source has that
    shape is asked when values are made (a CSV has tongueOut, an ICT-FaceKit head has not), so one rig's links
    serve every source. The rig's reference key (its first, 'Basis') is never a target: leave it out."""
    return [ShapeLink(name, arkit_name(name) or "") for name in target_names]


def unmatched(links: list[ShapeLink], source_names) -> tuple[list[str], list[str]]:
    """(target keys this source drives not: no link, or a shape the source lacks; source names that drive no
    target), for the user to see and correct."""
    columns = source_columns(source_names)
    reads = {link.target: _columns_for(link.source, columns) if link.source else [] for link in links}
    used = {c for cols in reads.values() for c in cols}
    names = [str(n) for n in source_names]
    return [t for t, cols in reads.items() if not cols], [n for e, n in enumerate(names) if e not in used]


def target_values(source_names, weights: np.ndarray, links: list[ShapeLink], strength: float = 1.0,
                  limits: dict[str, tuple[float, float]] | None = None) -> dict[str, np.ndarray]:
    """weights [N, E] of the source's names -> {target key: [N] float32} for every link with a source. limits:
    each key's (min, max) slider range, default (0, 1). Links to a shape the source lacks are left out."""
    columns = source_columns(source_names)
    weights = np.asarray(weights, dtype=np.float64)
    values = {}
    for link in links:
        if not link.source:
            continue
        cols = _columns_for(link.source, columns)
        if not cols:
            continue
        lo, hi = (limits or {}).get(link.target, (0.0, 1.0))
        v = link.offset + link.scale * strength * weights[:, cols].mean(1)
        values[link.target] = np.clip(v, lo, hi).astype(np.float32)
    return values


def blender_rotations(rotation: np.ndarray) -> np.ndarray:
    """[N, 3, 3] camera-space head rotations -> [N, 3, 3] the same turns in Blender's world axes."""
    return Z_UP_FROM_Y_UP @ np.asarray(rotation, dtype=np.float64) @ Z_UP_FROM_Y_UP.T


def camera_rotations(world: np.ndarray) -> np.ndarray:
    """blender_rotations' inverse: [N, 3, 3] turns in Blender's world axes -> camera-space head rotations."""
    return Z_UP_FROM_Y_UP.T @ np.asarray(world, dtype=np.float64) @ Z_UP_FROM_Y_UP


def bone_rotations(world: np.ndarray, armature: np.ndarray, bone_rest: np.ndarray) -> np.ndarray:
    """World turns [N, 3, 3] (blender_rotations) -> a pose bone's rotations [N, 3, 3] in its own rest axes, so
    that the bone turns by them about its head in the world: B^T A^T M A B, with A [3, 3] the armature object's
    world rotation and B [3, 3] the bone's rest rotation in the armature (bone.matrix_local)."""
    a, b = np.asarray(armature, dtype=np.float64), np.asarray(bone_rest, dtype=np.float64)
    return b.T @ a.T @ world @ a @ b
