"""The ways in: the `mlaface` command line and the worker process the Blender add-on talks to."""
