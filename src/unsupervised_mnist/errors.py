"""Errors that reach the user as one line, with no traceback."""


class UserError(Exception):
    """Bad input (a param, a file): the message names it and says what was expected."""


class ParamsError(UserError):
    """A value in params.yaml is missing, unknown, of the wrong type or out of range."""


class DataError(UserError):
    """A data file is missing, truncated, corrupt or inconsistent."""


class TrainingError(UserError):
    """Training diverged (NaN/Inf loss) or cannot go on."""
