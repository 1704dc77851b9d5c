"""Errors of the runtime layer (``init``, ``shutdown``, the context); one base."""

from __future__ import annotations


class CoralRuntimeError(RuntimeError):
    """The runtime cannot do what was asked; the message says how to fix it."""


class RuntimeAlreadyInitialisedError(CoralRuntimeError):
    """``init`` was called again with a different configuration."""


class RuntimeClosedError(CoralRuntimeError):
    """The context was shut down; call ``coral_inference.init()`` again."""
