"""The sidebar panels in the 3D viewport (N panel, tab "mlaface"): reconstruction, and driving your own
character (the source, the selected mesh's links to correct, what stays unmatched)."""

from __future__ import annotations

import bpy

from . import session


class MLAFACE_PT_main(bpy.types.Panel):
    bl_label = "mlaface"
    bl_idname = "MLAFACE_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "mlaface"

    def draw(self, context):
        from .preferences import preferences

        prefs = preferences(context)
        box = self.layout.box()
        for ready, text in (session.backend_state(prefs), session.model_state(prefs)):
            box.label(text=text, icon="CHECKMARK" if ready else "ERROR")
        if session.readiness(prefs):
            box.operator("preferences.addon_show", text="Set Up in Preferences", icon="PREFERENCES").module = \
                __package__
        col = self.layout.column(align=True)
        col.operator("mlaface.reconstruct", icon="USER")
        col.operator("mlaface.reconstruct_same_person", icon="COMMUNITY")
        col.operator("mlaface.batch_import", icon="FILE_FOLDER")
        col.operator("mlaface.animate_clip", icon="FILE_MOVIE")
        self.layout.separator()
        row = self.layout.row()
        row.label(text=session.STATUS["text"], icon="INFO")
        self.layout.operator("mlaface.check_worker", icon="PLAY")


class MLAFACE_UL_links(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.label(text=item.target, icon="SHAPEKEY_DATA" if item.source != "NONE" else "BLANK1")
        row.prop(item, "source", text="")
        row.prop(item, "scale", text="")
        row.prop(item, "offset", text="")


class MLAFACE_PT_drive(bpy.types.Panel):
    bl_label = "Drive Your Character"
    bl_idname = "MLAFACE_PT_drive"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "mlaface"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout, settings = self.layout, context.scene.mlaface_drive
        layout.prop(settings, "source", expand=True)
        if settings.source == "HEAD":
            layout.prop(settings, "head")
        else:
            layout.prop(settings, "filepath")
            if settings.source == "CSV":
                layout.prop(settings, "csv_fps")
            layout.prop(settings, "start_frame")
        layout.prop(settings, "strength")
        layout.prop(settings, "head_object")
        if settings.head_object is not None and settings.head_object.type == "ARMATURE":
            layout.prop_search(settings, "head_bone", settings.head_object.pose, "bones")
        row = layout.row(align=True)
        row.operator("mlaface.match_shape_keys", icon="LINKED")
        row.operator("mlaface.apply_to_selected", icon="ACTION")
        layout.operator("mlaface.import_live_link", icon="IMPORT")
        obj = context.active_object
        if obj is None or not len(getattr(obj, "mlaface_links", ())):
            layout.label(text="Select a mesh with ARKit shape keys, then Match", icon="INFO")
            return
        layout.label(text=f"{obj.name}: shape key <- ARKit shape, scale, offset")
        layout.template_list("MLAFACE_UL_links", "", obj, "mlaface_links", obj, "mlaface_links_index", rows=6)
        for label, text in (("Not driven", obj.mlaface_unmatched_targets),
                            ("Unused from the source", obj.mlaface_unmatched_sources)):
            if text:
                layout.label(text=f"{label}: {text}", icon="ERROR")


classes = (MLAFACE_PT_main, MLAFACE_UL_links, MLAFACE_PT_drive)
