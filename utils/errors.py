"""The exception for mistakes in what the user asked for, as opposed to bugs in the code."""


class UsageError(Exception):
    """Bad input (a flag, a file, a name); the message names it and says what was expected.

    Scripts print it as one line without a traceback and exit with status 2.
    """
