"""Add-on preferences: the backend (installed by the add-on into its own environment, or an interpreter the user
chooses), the face model, device, texture size and fitting steps; the state of each, shown where it is set."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import session


class MLAFACE_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(
        name="Use this Python", subtype="FILE_PATH",
        description="Optional: an interpreter with mlaface installed (pip install the wheel in this extension's "
                    "wheels folder) instead of the add-on's own environment")
    model_path: StringProperty(
        name="Face model", subtype="FILE_PATH",
        description="Optional: a face model file; empty: the one Download Face Model installed")
    base_python: StringProperty(
        name="Python for the environment", subtype="FILE_PATH",
        description="The Python that makes the backend's environment; empty: Blender's own")
    torch_build: EnumProperty(name="PyTorch", items=[
        ("auto", "Auto", "CUDA where an NVIDIA GPU is found, else CPU"), ("cpu", "CPU", "PyTorch's CPU build"),
        ("cuda", "CUDA", "PyTorch's CUDA 12.4 build"), ("pypi", "PyPI Default", "PyPI's own torch wheel")],
        default="auto")
    package_source: StringProperty(
        name="Package folder", subtype="DIR_PATH",
        description="Optional: install offline from a folder of wheels (pip --no-index --find-links)")
    reuse_site_packages: BoolProperty(
        name="Reuse that Python's packages",
        description="The environment sees the packages of the Python that makes it (saves downloading torch "
                    "where that Python has it)")
    device: EnumProperty(name="Device", items=[("auto", "Auto", "CUDA when available, else CPU"),
                                                ("cpu", "CPU", ""), ("cuda", "CUDA", "")], default="auto")
    texture_size: IntProperty(name="Texture size", default=1024, min=512, max=2048)
    fit_steps: IntProperty(name="Fitting steps", default=40, min=0, max=2000)  # backend's FIT_STEPS

    def draw(self, context):
        layout = self.layout
        box = layout.box()
        ready, text = session.backend_state(self)
        box.label(text=text, icon="CHECKMARK" if ready else "ERROR")
        row = box.row()
        if session.installing():
            row.operator("mlaface.cancel_install", icon="CANCEL")
        else:
            row.operator("mlaface.install_backend", icon="IMPORT")
        row.operator("mlaface.open_install_log", icon="TEXT")
        row.operator("mlaface.uninstall_backend", icon="TRASH")
        ready, text = session.model_state(self)
        box.label(text=text, icon="CHECKMARK" if ready else "ERROR")
        row = box.row()
        row.operator("mlaface.download_model", icon="URL")
        row.operator("mlaface.install_model_file", icon="FILE_FOLDER")
        advanced = layout.box()
        advanced.label(text="Advanced")
        advanced.prop(self, "torch_build")
        advanced.prop(self, "base_python")
        advanced.prop(self, "package_source")
        advanced.prop(self, "reuse_site_packages")
        advanced.prop(self, "python_path")
        advanced.prop(self, "model_path")
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
