"""Drive your own character, the operators and their settings: Match Shape Keys (the list of links the user
corrects, saved on each target object), Apply to Selected (the scene's chosen source onto the selected meshes)
and Import Live Link Face CSV (a CSV onto the selected meshes, the mlaface head among them). Blender data is
built by drive.py; errors are reported in Blender's UI and leave the scene as it was."""

from __future__ import annotations

import bpy
from bpy.props import CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .backend.io.errors import MlafaceError
from .backend.rig.names import VOCABULARY
from .drive import apply_track, match_object, shape_key_names, source_track

SOURCE_ITEMS = [("NONE", "(not driven)", "No ARKit shape drives this key")] + [(n, n, "") for n in VOCABULARY]


class MLAFACE_ShapeLink(bpy.types.PropertyGroup):
    """One of a target's shape keys and what drives it: value = offset + scale * strength * source."""

    target: StringProperty(name="Shape Key")
    source: EnumProperty(name="Source", items=SOURCE_ITEMS, default="NONE")
    scale: FloatProperty(name="Scale", default=1.0, soft_min=-2.0, soft_max=2.0)
    offset: FloatProperty(name="Offset", default=0.0, soft_min=-1.0, soft_max=1.0)


def _is_head(self, obj) -> bool:
    return bool(shape_key_names(obj))


class MLAFACE_DriveSettings(bpy.types.PropertyGroup):
    source: EnumProperty(name="Source", items=[
        ("HEAD", "Head", "A head in the scene (an mlaface head, or any ARKit rig): its shape-key animation, or "
                         "its current expression where it has none"),
        ("TRACK", "Clip Track", "A clip's animation track (_anim.npz, written by mlaface animate)"),
        ("CSV", "Live Link CSV", "A Live Link Face recording (.csv)")], default="TRACK")
    head: PointerProperty(name="Head", type=bpy.types.Object, poll=_is_head,
                          description="The head whose animation (or current expression) is applied")
    filepath: StringProperty(name="File", subtype="FILE_PATH",
                             description="The _anim.npz track or the Live Link Face CSV")
    csv_fps: FloatProperty(name="Timecode Rate", default=0.0, min=0.0, max=240.0,
                           description="Frames per second of the CSV's timecodes; 0: read from the timecodes")
    strength: FloatProperty(name="Strength", default=1.0, min=0.0, soft_max=2.0,
                            description="Every shape key's value times this")
    start_frame: IntProperty(name="Start Frame", default=1,
                             description="The scene frame of the source's first sample (a single expression goes "
                                         "on the current frame)")
    head_object: PointerProperty(name="Head Rotation", type=bpy.types.Object,
                                 description="The object (or, for an armature, the bone below) that takes the head's "
                                             "rotation; empty: no rotation")
    head_bone: StringProperty(name="Bone", description="The armature's head bone")


def _targets(context, settings) -> list:
    """The selected meshes with shape keys, the source head left out; the active object where none is selected."""
    chosen = list(context.selected_objects) or ([context.active_object] if context.active_object else [])
    targets = [o for o in chosen if shape_key_names(o) and not (settings.source == "HEAD" and o == settings.head)]
    if not targets:
        raise MlafaceError("select the meshes to drive: none of the selected objects is a mesh with shape keys"
                           + (" other than the source head" if settings.source == "HEAD" else ""))
    return targets


class MLAFACE_OT_match_shape_keys(bpy.types.Operator):
    """Match the selected meshes' shape keys to ARKit's names again (the list below, which you can correct)"""

    bl_idname = "mlaface.match_shape_keys"
    bl_label = "Match Shape Keys"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.mlaface_drive
        try:
            targets = _targets(context, settings)
            try:
                track = source_track(settings)
            except MlafaceError:
                track = None  # without a readable source, match by names alone
            for obj in targets:
                match_object(obj, track)
        except MlafaceError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        matched = sum(item.source != "NONE" for o in targets for item in o.mlaface_links)
        self.report({"INFO"}, f"mlaface: {matched} shape keys matched on {len(targets)} mesh(es)")
        return {"FINISHED"}


class MLAFACE_OT_apply_to_selected(bpy.types.Operator):
    """Key the chosen source (a head's expression, a clip's track or a Live Link Face CSV) onto the selected
    meshes' ARKit shape keys, in a new action per mesh, and optionally the head rotation onto an object or bone"""

    bl_idname = "mlaface.apply_to_selected"
    bl_label = "Apply to Selected"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.mlaface_drive
        try:
            targets = _targets(context, settings)
            report = apply_track(context, source_track(settings), targets, settings)
        except MlafaceError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, "mlaface: " + "; ".join(report))
        return {"FINISHED"}


class MLAFACE_OT_import_live_link(bpy.types.Operator):
    """Key a Live Link Face CSV onto the selected meshes' ARKit shape keys (the mlaface head or your own rig)"""

    bl_idname = "mlaface.import_live_link"
    bl_label = "Import Live Link Face CSV"
    bl_options = {"REGISTER", "UNDO"}
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    def execute(self, context):
        settings = context.scene.mlaface_drive
        settings.source, settings.filepath = "CSV", self.filepath
        return bpy.ops.mlaface.apply_to_selected()

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


classes = (MLAFACE_ShapeLink, MLAFACE_DriveSettings, MLAFACE_OT_match_shape_keys, MLAFACE_OT_apply_to_selected,
           MLAFACE_OT_import_live_link)


def register_properties() -> None:
    bpy.types.Scene.mlaface_drive = PointerProperty(type=MLAFACE_DriveSettings)
    bpy.types.Object.mlaface_links = CollectionProperty(type=MLAFACE_ShapeLink)
    bpy.types.Object.mlaface_links_index = IntProperty()
    bpy.types.Object.mlaface_unmatched_targets = StringProperty()
    bpy.types.Object.mlaface_unmatched_sources = StringProperty()


def unregister_properties() -> None:
    for owner, name in ((bpy.types.Scene, "mlaface_drive"), (bpy.types.Object, "mlaface_links"),
                        (bpy.types.Object, "mlaface_links_index"), (bpy.types.Object, "mlaface_unmatched_targets"),
                        (bpy.types.Object, "mlaface_unmatched_sources")):
        delattr(owner, name)
