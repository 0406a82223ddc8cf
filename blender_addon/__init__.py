"""mlaface for Blender: reconstructs faces from photos through the mlaface backend, run in its own Python as a
worker subprocess (Blender's Python has no torch; this package never imports torch). Registers the preferences,
the operators and the sidebar panel, in that order, and unregisters them in reverse. bpy is imported only there,
so the bpy-free helpers (worker_client) import anywhere."""


def _modules():
    from . import operators, panels, preferences

    return preferences, operators, panels


def register() -> None:
    import bpy

    for module in _modules():
        for cls in module.classes:
            bpy.utils.register_class(cls)


def unregister() -> None:
    import bpy

    from . import session

    session.stop()
    for module in reversed(_modules()):
        for cls in reversed(module.classes):
            bpy.utils.unregister_class(cls)
