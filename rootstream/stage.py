"""Stage threads: a failure is said once and ends the session.

The host's capture and encode threads and the client's receive, decode and
present stages each run a loop until the session stops.  A failure they
expect (a RootStreamError: the compositor ended screen sharing, the encoder
refused a frame) they report themselves, with its hint.  Anything else is a
bug, and without a guard it would end the thread without a word while the
control loop went on: the client would keep receiving keepalives and never
another picture.  ``run_stage`` is that guard: it says once which stage
failed and with what, and hands the loop a StageError so it ends the session
(the host says bye with ByeReason.ERROR and exits non-zero).

The services' own threads (sound, microphone, clipboard) run under the same
guard through a ``ThreadGuard``: their loops still handle what they expect
(a sound server that went away: "sound stopped", the picture goes on), but
anything else is kept as a StageError until the session's loop next calls
the service's ``tick``, which raises it there.  The loop that owns the
session then ends it as for a video stage: the client says bye and reports
the sentence, the host's serve() ends with it (the command prints it and
exits non-zero), instead of a dead thread nobody notices.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable

from rootstream.errors import RootStreamError

# Set ROOTSTREAM_DEBUG=1 to have a stage failure's traceback on stderr as well.
DEBUG_ENV = "ROOTSTREAM_DEBUG"


class StageError(RootStreamError):
    """A stage thread stopped on an exception its loop did not handle."""

    def __init__(self, stage: str, exc: BaseException):
        if isinstance(exc, RootStreamError):  # ours, but not one the loop expected
            message, hint = f"{stage} stopped: {exc}", exc.hint
        else:  # a bug
            message = f"the {stage} stage failed: {type(exc).__name__}: {exc}"
            hint = (f"this is a bug in rootstream: please report it, with the traceback "
                    f"{DEBUG_ENV}=1 prints")
        super().__init__(message, hint=hint)
        self.stage = stage
        self.__cause__ = exc


def run_stage(stage: str, body: Callable[[], None], failed: Callable[[StageError], None],
              *, passes: tuple[type[BaseException], ...] = ()) -> None:
    """Run ``body`` (a stage's loop); an exception it lets out goes to ``failed``.

    ``passes``: exceptions left to the caller instead (on the caller's own
    thread, where the command line turns a RootStreamError into its sentence).
    """
    try:
        body()
    except passes:
        raise
    except Exception as exc:  # noqa: BLE001 - the point: nothing may end a stage unsaid
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc(file=sys.stderr)
        failed(exc if isinstance(exc, StageError) else StageError(stage, exc))


class ThreadGuard:
    """run_stage for a service's own threads; see the module docstring."""

    def __init__(self) -> None:
        self.failure: StageError | None = None  # kept for the log and tests
        self._unraised: StageError | None = None

    def thread(self, stage: str, body: Callable[[], None], *, name: str | None = None,
               ) -> threading.Thread:
        """A daemon thread running ``body`` under the guard (not started)."""
        return threading.Thread(target=run_stage, args=(stage, body, self._failed),
                                name=name or stage, daemon=True)

    def _failed(self, error: StageError) -> None:
        if self.failure is None:  # the first failure is the one said
            self.failure = self._unraised = error

    def check(self) -> None:
        """Raise a failure not raised yet (from the session loop's thread, in tick)."""
        error, self._unraised = self._unraised, None
        if error is not None:
            raise error


def describe(error: RootStreamError) -> str:
    """The error and its hint, as one line for a log."""
    return f"{error} ({error.hint})" if error.hint else str(error)
