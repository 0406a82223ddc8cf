"""The one exception type for problems a user can fix (bad file, missing model, wrong option).

The CLI and the worker print its message and exit non-zero; anything else is a bug and keeps its traceback.
"""


class MlafaceError(Exception):
    """A user-facing error. The message names the file or option at fault and, where it can, the fix."""
