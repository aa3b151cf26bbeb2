"""The one exception type a user sees without a traceback."""


class UserError(Exception):
    """Bad input a user can fix: the message names the file, option or store, and the fix.

    The command-line tools print it in red and exit with status 2; library callers catch it like any
    other exception.
    """
