"""The one exception type for problems a user can fix (bad file, missing model, wrong option).

The CLI and the worker print its message and exit non-zero; anything else is a bug and keeps its traceback.
"""


class MlafaceError(Exception):
    """A user-facing error. The message names the file or option at fault and, where it can, the fix."""


class OptionError(MlafaceError):
    """A run option out of its range, raised where the option is defined (an options dataclass) so that the command
    line and the worker refuse the same values in the same words. .option is the field's name, which is also the
    worker protocol's; `as_flag` says it as the command line's flag (fit_steps -> --fit-steps)."""

    def __init__(self, option: str, problem: str):
        super().__init__(f"{option} {problem}")
        self.option, self.problem = option, problem

    def as_flag(self) -> MlafaceError:
        return MlafaceError(f"--{self.option.replace('_', '-')} {self.problem}")
