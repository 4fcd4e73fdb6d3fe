"""The user error every layer may raise: a file or text that cannot be used. Lowest layer (imports nothing), so
that tasks/ and serving/ can both raise it; the commands print it as one line and exit 2."""


class InputError(ValueError):
    """A user-supplied file or text cannot be used; the message says why and what to do."""
