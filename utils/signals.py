"""Graceful stops on SIGTERM and SIGINT: finish the step, checkpoint, then exit.

SLURM, Kubernetes and ``kill`` send SIGTERM before they kill a job; Ctrl-C sends SIGINT. Both
only set a flag here, and the training loop calls :meth:`GracefulStop.check` between steps, so
a checkpoint never captures a half-applied optimizer step. A second Ctrl-C stops at once.
"""

import os
import signal
import threading
from types import FrameType, TracebackType

HANDLED = (signal.SIGTERM, signal.SIGINT)
STDERR = 2


def stop_notice(signum: int, doing: str) -> bytes:
    """The line a stop signal gets at once: what happens now and, for Ctrl-C, how to stop at
    once (a second SIGTERM waits like the first, as a scheduler's grace period expects)."""
    hint = " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
    return f"{signal.Signals(signum).name} received: {doing}{hint}\n".encode()


class StopRequested(BaseException):
    """Raised between steps after a stop signal; a BaseException, like KeyboardInterrupt.

    ``exit_code`` follows the shell convention 128 + signal number (143 SIGTERM, 130 SIGINT).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"{signal.Signals(signum).name} received")


class GracefulStop:
    """Context manager that turns SIGTERM/SIGINT into a flag checked between steps.

    Handlers are installed only in the main thread (elsewhere Python forbids it) and the
    previous ones are restored on exit.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self.handle) for sig in HANDLED}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self.previous = {}

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: the user does not want to wait
        if self.signum is None:
            # Straight to the file descriptor: a handler runs between two bytecodes of the main
            # thread, which may be halfway through writing a log line, and the logging and io
            # objects are not reentrant (a nested write raises and prints a traceback).
            doing = "finishing the current step, then saving a checkpoint"
            os.write(STDERR, stop_notice(signum, doing))
        self.signum = signum

    def check(self) -> None:
        """Raise :class:`StopRequested` if a stop signal has arrived since entering."""
        if self.signum is not None:
            raise StopRequested(self.signum)
