"""Drive your own character: a source's shape-key curves and head rotation (backend/rig/retarget.py computes the
values) built into Blender data on the user's meshes, armature bones or objects.

Every target gets a new action ("<name> mlaface"); an action it already had that is not one of ours is pushed
onto an NLA track beneath, so it still plays and nothing the user keyed is changed. Keyframes are set in bulk
(keyframe_points.add + foreach_set) at the scene's frame rate, linear between samples. Head rotation, optional,
goes onto a chosen object (turning it from the rotation it had when first driven, kept in the custom property
mlaface_rest_rotation) or a pose bone (about its head, in its rest axes), the source's turn taken in Blender's
world axes (z up, a character facing -y: its front view; see backend/rig/retarget.py). All or nothing: a
failure undoes every change.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from .backend.io.animation import AnimationTrack, pose_track, read_track
from .backend.io.errors import MlafaceError
from .backend.io.live_link import read_live_link_csv
from .backend.rig.retarget import (
    ShapeLink,
    blender_rotations,
    bone_rotations,
    camera_rotations,
    match_links,
    target_values,
    unmatched,
)
from .importer import fcurves, scene_frames

OURS = "mlaface_drive"  # custom property on the actions made here


def source_track(settings):
    """The scene's chosen source (settings: MLAFACE_DriveSettings) as an AnimationTrack; MlafaceError when it
    cannot be read."""
    if settings.source == "HEAD":
        head = settings.head
        if head is None or not shape_key_names(head):
            raise MlafaceError("choose the head whose expression to apply (a mesh with shape keys)")
        return head_track(head)
    path = bpy.path.abspath(settings.filepath)
    if not settings.filepath:
        raise MlafaceError("choose the animation track (_anim.npz) or Live Link Face CSV to apply")
    if settings.source == "TRACK":
        return read_track(path)
    return read_live_link_csv(path, settings.csv_fps or None)


def head_track(head):
    """A head in the scene as a source: its shape keys' animation over its action's frames (and the object's
    rotation at each), or, where its keys are not animated, its current expression as one frame."""
    blocks = head.data.shape_keys.key_blocks[1:]
    names = [b.name for b in blocks]
    anim = head.data.shape_keys.animation_data
    if anim is None or anim.action is None:
        return pose_track(names, [b.value for b in blocks], camera_rotations(_world_turn(head)), head.name)
    scene = bpy.context.scene
    first, last = (int(round(f)) for f in anim.action.frame_range)
    frames = np.arange(first, last + 1)
    curves = {c.data_path: c for c in fcurves(head.data.shape_keys)}
    per_key = [curves.get(f'key_blocks["{bpy.utils.escape_identifier(b.name)}"].value') for b in blocks]
    weights = np.array([[c.evaluate(f) if c is not None else b.value for b, c in zip(blocks, per_key, strict=True)]
                        for f in frames], np.float32)
    current, turns = scene.frame_current, []
    for f in frames:  # the object's world rotation, however it is animated (parents, constraints)
        scene.frame_set(int(f))
        turns.append(_world_turn(head))
    scene.frame_set(current)
    fps = scene.render.fps / scene.render.fps_base
    n = len(frames)
    return AnimationTrack(fps=fps, times=(frames - first) / fps, frame_index=np.arange(n, dtype=np.int32),
                          expression_names=np.array(names), weights=np.clip(weights, 0, None),
                          rotation=camera_rotations(np.array(turns)).astype(np.float32),
                          translation=np.zeros((n, 3), np.float32),
                          tracked=np.ones(n, bool), source=head.name)


def _world_turn(obj) -> np.ndarray:
    """[3, 3] the object's world rotation (scale taken out)."""
    return np.array(obj.matrix_world.to_3x3().normalized())


def shape_key_names(obj) -> list[str]:
    """A mesh's shape keys without its reference key (Basis); [] for anything else."""
    keys = getattr(obj.data, "shape_keys", None) if obj is not None and obj.type == "MESH" else None
    return [b.name for b in keys.key_blocks[1:]] if keys is not None else []


def stored_links(obj) -> list[ShapeLink]:
    """The object's saved links (the list the user corrects), matched by name first if it has none."""
    if not len(obj.mlaface_links):
        match_object(obj)
    keys = set(shape_key_names(obj))
    return [ShapeLink(item.target, "" if item.source == "NONE" else item.source, item.scale, item.offset)
            for item in obj.mlaface_links if item.target in keys]


def match_object(obj, track=None) -> None:
    """Fill the object's links from its shape keys' names (replacing the list), and with a source, note what stays
    unmatched on each side."""
    obj.mlaface_links.clear()
    links = match_links(shape_key_names(obj))
    for link in links:
        item = obj.mlaface_links.add()
        item.target, item.source = link.target, link.source or "NONE"
    note_unmatched(obj, links, track)


def note_unmatched(obj, links, track) -> tuple[list[str], list[str]]:
    names = track.expression_names if track is not None else []
    targets, sources = unmatched(links, names)
    obj.mlaface_unmatched_targets = ", ".join(targets)
    obj.mlaface_unmatched_sources = ", ".join(sources) if track is not None else ""
    return targets, sources


class Changes:
    """What one apply did, undone in reverse when it fails: new actions, NLA tracks, assignments, properties."""

    def __init__(self):
        self.undo: list = []

    def revert(self) -> None:
        for step in reversed(self.undo):
            step()
        self.undo.clear()


def _new_action(id_data, name: str, changes: Changes):
    """A new action assigned to id_data in its own slot, the one it had kept playing on an NLA track beneath
    (unless it was ours); -> (action, its F-curves' collection)."""
    anim = id_data.animation_data
    if anim is None:
        anim = id_data.animation_data_create()
        changes.undo.append(id_data.animation_data_clear)
    old, old_slot = anim.action, getattr(anim, "action_slot", None)
    if old is not None and not old.get(OURS):
        track = anim.nla_tracks.new()
        track.name = f"{old.name} (before mlaface)"
        track.strips.new(old.name, int(old.frame_range[0]), old)
        changes.undo.append(lambda: anim.nla_tracks.remove(track))
    action = bpy.data.actions.new(name)
    action[OURS] = True
    changes.undo.append(lambda: bpy.data.actions.remove(action))

    def restore():
        anim.action = old
        if old_slot is not None:
            anim.action_slot = old_slot
    changes.undo.append(restore)
    anim.action = action
    if hasattr(action, "slots"):  # Blender 4.4+: F-curves live in a slot's channel bag
        slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
        anim.action_slot = slot
        return action, action.layers.new("Layer").strips.new(type="KEYFRAME").channelbag(slot, ensure=True).fcurves
    return action, action.fcurves


def _key(fcurves, path: str, frames: np.ndarray, values: np.ndarray, index: int = 0) -> None:
    curve = fcurves.new(path, index=index)
    curve.keyframe_points.add(len(frames))
    curve.keyframe_points.foreach_set("co", np.stack([frames, values], 1).astype(np.float32).ravel())
    curve.keyframe_points.foreach_set("interpolation", np.full(len(frames), 1, np.int32))  # LINEAR
    curve.update()


def _rotation_channels(mode: str, turns: np.ndarray) -> tuple[str, np.ndarray]:
    """Rotation matrices [K, 3, 3] -> (the property for a rotation mode, its values [K, C]); Euler angles kept
    continuous from frame to frame."""
    if mode == "QUATERNION":
        quats, previous = [], None
        for m in turns:
            q = Matrix(m.tolist()).to_quaternion()
            if previous is not None:
                q.make_compatible(previous)
            quats.append(tuple(q))
            previous = q
        return "rotation_quaternion", np.array(quats)
    if mode == "AXIS_ANGLE":
        out = []
        for m in turns:
            axis, angle = Matrix(m.tolist()).to_quaternion().to_axis_angle()
            out.append((angle, *axis))
        return "rotation_axis_angle", np.array(out)
    eulers, previous = [], None
    for m in turns:
        e = Matrix(m.tolist()).to_euler(mode, previous) if previous is not None else Matrix(m.tolist()).to_euler(mode)
        eulers.append(tuple(e))
        previous = e
    return "rotation_euler", np.array(eulers)


def _key_rotation(settings, world: np.ndarray, frames: np.ndarray, changes: Changes) -> str:
    """Head rotation keys onto the chosen object or pose bone; -> what was keyed, for the report."""
    target = settings.head_object
    if target.type == "ARMATURE" and settings.head_bone:
        bone = target.pose.bones.get(settings.head_bone)
        if bone is None:
            raise MlafaceError(f"{target.name} has no bone named {settings.head_bone!r}")
        turns = bone_rotations(world, np.array(target.matrix_world.to_3x3().normalized()),
                               np.array(bone.bone.matrix_local.to_3x3()))
        prop, values = _rotation_channels(bone.rotation_mode, turns)
        path = f'pose.bones["{bpy.utils.escape_identifier(bone.name)}"].{prop}'
        what = f"{target.name}'s bone {bone.name}"
    else:
        if "mlaface_rest_rotation" not in target:
            target["mlaface_rest_rotation"] = list(target.matrix_basis.to_quaternion())
            changes.undo.append(lambda: target.pop("mlaface_rest_rotation", None))
        rest = np.array(Quaternion(target["mlaface_rest_rotation"]).to_matrix())
        prop, values = _rotation_channels(target.rotation_mode, world @ rest)
        path, what = prop, target.name
    _, fcurves = _new_action(target, f"{target.name} mlaface head", changes)
    for c in range(values.shape[1]):
        _key(fcurves, path, frames, values[:, c], index=c)
    return what


def apply_track(context, track, targets: list, settings) -> list[str]:
    """Key the track onto the targets' shape keys (and the head rotation where settings choose an object) from
    the scene's start frame (a one-frame source: at the current frame); -> lines for the report. MlafaceError,
    with every change undone, when nothing can be driven or anything fails."""
    scene = context.scene
    fps = scene.render.fps / scene.render.fps_base
    start = scene.frame_current if track.n_frames == 1 else settings.start_frame
    frames, rows = scene_frames(track.times, fps, start)
    frames = frames.astype(np.float64)
    changes, report = Changes(), []
    try:
        for obj in targets:
            links = stored_links(obj)
            blocks = obj.data.shape_keys.key_blocks
            limits = {b.name: (b.slider_min, b.slider_max) for b in blocks}
            values = target_values(track.expression_names, track.weights[rows], links, settings.strength, limits)
            missing, _ = note_unmatched(obj, links, track)
            if not values:
                raise MlafaceError(f"{obj.name}: none of its shape keys is an ARKit shape this source drives")
            _, fcurves = _new_action(obj.data.shape_keys, f"{obj.name} mlaface", changes)
            for name, v in values.items():
                _key(fcurves, f'key_blocks["{bpy.utils.escape_identifier(name)}"].value', frames, v)
            report.append(f"{obj.name}: {len(values)} shape keys" +
                          (f" ({len(missing)} not driven: {', '.join(missing[:4])}"
                           f"{'...' if len(missing) > 4 else ''})" if missing else ""))
        if settings.head_object is not None:
            report.append("head rotation on " + _key_rotation(settings, blender_rotations(track.rotation[rows]),
                                                              frames, changes))
    except Exception:
        changes.revert()
        raise
    if track.n_frames > 1 and frames[-1] > scene.frame_end:
        report.append(f"the animation runs to frame {int(frames[-1])}, past the scene's end {scene.frame_end}")
    scene.frame_set(scene.frame_current)
    return report
