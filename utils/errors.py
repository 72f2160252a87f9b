"""The exception for mistakes in what the user asked for, as opposed to bugs in the code."""


class UsageError(Exception):
    """Bad input (a flag, a file, a name); the message names it and says what was expected.

    Scripts print it as one line without a traceback and exit with status 2. ``every_rank``
    says that under torchrun every process raises the same error at the same point (a check
    the ranks agreed on), so rank 0 alone prints it.
    """

    def __init__(self, message: str, every_rank: bool = False) -> None:
        super().__init__(message)
        self.every_rank = every_rank


class NonFiniteLossError(UsageError):
    """The training loss became NaN or infinite; the message names the epoch and step.

    A UsageError because the fix is the user's (learning rate, clipping, ``--nonfinite skip``)
    and one line says it better than a traceback.
    """
