"""Exceptions the interop peer's RPC server raises.

They live in their own module so that a failure names a real module
("peer_errors") rather than "__main__", as a service's exceptions do.
"""


class QuotaExceeded(Exception):
    """A service error with keyword arguments, sent as the failure's kwargs."""

    def __init__(self, message, **kwargs):
        super().__init__(message)
        self.kwargs = kwargs


class InstanceNotFound(Exception):
    """Nova's pattern: without a message, it is made from the kwargs."""

    msg_fmt = "Instance %(instance_id)s could not be found."

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if not message:
            message = self.msg_fmt % kwargs
        super().__init__(message)
