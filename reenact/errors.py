"""Errors the service reports back to the caller."""


class RequestError(ValueError):
    """The caller sent something the service cannot use; the message says what and what is
    accepted. Served as a per-request ``INVALID_ARG`` error."""
