"""mlaface for Blender: reconstructs faces from photos through the mlaface backend, run in its own Python as a
worker subprocess (Blender's Python has no torch; this package never imports torch), and drives any ARKit rig
from a head, a clip's track or a Live Link Face CSV. Registers the preferences, the operators, the drive
operators (with the properties they add to scenes and objects) and the sidebar panels, in that order, and
unregisters them in reverse. bpy is imported only there, so the bpy-free helpers (worker_client) import
anywhere."""


def _modules():
    from . import drive_operators, operators, panels, preferences, setup_operators

    return preferences, setup_operators, operators, drive_operators, panels


def register() -> None:
    import bpy

    for module in _modules():
        for cls in module.classes:
            bpy.utils.register_class(cls)
        if hasattr(module, "register_properties"):
            module.register_properties()


def unregister() -> None:
    import bpy

    from . import session

    session.stop()
    for module in reversed(_modules()):
        if hasattr(module, "unregister_properties"):
            module.unregister_properties()
        for cls in reversed(module.classes):
            bpy.utils.unregister_class(cls)
