"""mlaface for Blender: reconstructs faces through the mlaface backend, run in its own Python as a worker
subprocess (Blender's Python has no torch). This module never imports torch or the backend."""


def register() -> None:
    pass


def unregister() -> None:
    pass
