"""Driving ARKit rigs: shape-key names matched across the spellings rigs use, and a source's curves (a clip's
track, a Live Link Face CSV, a photo's expression) turned into each target key's values and a head rotation in
Blender's axes. numpy and the standard library only: the Blender add-on runs it."""
