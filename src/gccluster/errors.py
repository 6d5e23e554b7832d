"""User-facing errors: one line naming what is wrong and what is allowed, exit code 2.

A `UserError` is a problem with what the user gave us (a params value, a data folder, a
checkpoint file). Stages catch it at the top and print it as a single line; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the user; its message is the whole report (one line)."""


class NonFiniteLossError(UserError):
    """Training produced a NaN or infinite loss (usually a learning rate that is too high)."""


class ClusterCollapseError(UserError):
    """A GCC round's predictions fell into too few clusters (`gcc.min_balance`)."""


@contextmanager
def stage_errors(stage: str) -> Iterator[None]:
    """Turn a `UserError` raised inside a stage into `<stage>: error: <message>` and exit 2."""
    try:
        yield
    except UserError as err:
        message = " ".join(str(err).split())  # one line, whatever the message held
        print(f"{stage}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
