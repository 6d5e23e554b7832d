"""User-facing errors: one line naming what is wrong and what is allowed, exit code 2.

A `UserError` is a problem with what the user gave us (a params value, a data folder, a
checkpoint file). Stages catch it at the top and print it as a single line; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_USER_ERROR = 2
# Set by the launcher of torchrun workers: the folder where a worker leaves its error line.
WORKER_ERRORS_ENV = "GCCLUSTER_WORKER_ERRORS"


class UserError(Exception):
    """Bad input from the user; its message is the whole report (one line)."""


class NonFiniteLossError(UserError):
    """Training produced a NaN or infinite loss (usually a learning rate that is too high)."""


class ClusterCollapseError(UserError):
    """A GCC round's predictions fell into too few clusters (`gcc.min_balance`)."""


@contextmanager
def stage_errors(stage: str) -> Iterator[None]:
    """Turn a `UserError` raised inside a stage into `<stage>: error: <message>` and exit 2.
    A torchrun worker leaves the line in `WORKER_ERRORS_ENV`'s folder instead, for the
    launching process to print once (`distributed.launch_workers`)."""
    try:
        yield
    except UserError as err:
        line = f"{stage}: error: " + " ".join(str(err).split())  # one line, whatever the message held
        folder = os.environ.get(WORKER_ERRORS_ENV)
        if folder:
            with open(os.path.join(folder, f"rank{int(os.environ.get('RANK', 0)):06d}.txt"), "w") as handle:
                handle.write(line)
        else:
            print(line, file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
