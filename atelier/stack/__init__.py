"""The local stack: every real server and service, run under supervisord on loopback."""


class StackError(RuntimeError):
    """A component did not come up, or did not go away; the message names it and its log."""
