"""Add-on preferences: the Python that runs the worker, the face model, device, texture size and fitting steps."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import session


class MLAFACE_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(
        name="Python", subtype="FILE_PATH",
        description="A Python interpreter with mlaface's dependencies installed (torch, dlib): "
                    "pip install 'mlaface[dlib]'. Blender's own Python has no torch")
    model_path: StringProperty(
        name="Face model", subtype="FILE_PATH",
        description="The face model file; empty: $MLAFACE_MODEL, then the user cache (mlaface model install)")
    device: EnumProperty(name="Device", items=[("auto", "Auto", "CUDA when available, else CPU"),
                                                ("cpu", "CPU", ""), ("cuda", "CUDA", "")], default="auto")
    texture_size: IntProperty(name="Texture size", default=1024, min=512, max=2048)
    fit_steps: IntProperty(name="Fitting steps", default=150, min=0, max=2000)

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "model_path")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "texture_size")
        row.prop(self, "fit_steps")
        row = layout.row()
        row.operator("mlaface.check_worker", icon="PLAY")
        row.label(text=session.STATUS["text"])


classes = (MLAFACE_AddonPreferences,)


def preferences(context) -> MLAFACE_AddonPreferences:
    return context.preferences.addons[__package__].preferences
