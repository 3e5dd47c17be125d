"""The library's user errors: bad input (config, command line, data, weights, checkpoints), not bugs.

Every error the library raises for bad input derives from `UserError`, so the entry points report it as one line
and exit with status 2 instead of a traceback; anything else keeps its traceback. Each class also derives from the
builtin a caller would catch (`ValueError`, `KeyError`, `OSError`, ...), so `except ValueError` keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can fix; the message names the file, key or value and what was expected."""

    def __str__(self) -> str:
        # KeyError quotes its message; a user error prints it as written (OSError's errno form is kept)
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class EvalDataError(UserError, ValueError):
    """A record's ground truth is missing or malformed; the message names dataset, split, record and field."""
