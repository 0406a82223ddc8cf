"""The sidebar panel in the 3D viewport (N panel, tab "mlaface")."""

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
        col = self.layout.column(align=True)
        col.operator("mlaface.reconstruct", icon="USER")
        col.operator("mlaface.reconstruct_same_person", icon="COMMUNITY")
        col.operator("mlaface.batch_import", icon="FILE_FOLDER")
        col.operator("mlaface.animate_clip", icon="FILE_MOVIE")
        self.layout.separator()
        row = self.layout.row()
        row.label(text=session.STATUS["text"], icon="INFO")
        self.layout.operator("mlaface.check_worker", icon="PLAY")


classes = (MLAFACE_PT_main,)
