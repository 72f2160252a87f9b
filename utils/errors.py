"""The exception for mistakes in what the user asked for, as opposed to bugs in the code."""

import re

# How torch's DataLoader re-raises an exception of a worker process: its type, called with
# this text and the worker's traceback, whose last line is "<module>.<type>: <message>".
WORKER_ERROR = re.compile(r"Caught (\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


class UsageError(Exception):
    """Bad input (a flag, a file, a name); the message names it and says what was expected.

    Scripts print it as one line without a traceback and exit with status 2. ``every_rank``
    says that under torchrun every process raises the same error at the same point (a check
    the ranks agreed on), so rank 0 alone prints it. One raised in a DataLoader worker (a bad
    file read per sample) keeps its own one line when the loader raises it again.
    """

    def __init__(self, message: str, every_rank: bool = False) -> None:
        if found := WORKER_ERROR.match(message):
            message = message.rstrip().splitlines()[-1].partition(f"{found[1]}: ")[2]
        super().__init__(message)
        self.every_rank = every_rank


class NonFiniteLossError(UsageError):
    """The training loss became NaN or infinite; the message names the epoch and step.

    A UsageError because the fix is the user's (learning rate, clipping, ``--nonfinite skip``)
    and one line says it better than a traceback.
    """
