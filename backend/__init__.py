"""mlaface backend: face model, detection, network, renderer, texture, pipeline, CLI and worker (no bpy)."""

__version__ = "0.1.0"
