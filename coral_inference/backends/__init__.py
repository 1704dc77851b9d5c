"""Model backends: the adapter protocol, the registry and the built-in adapters."""

from coral_inference.backends.base import (
    BackendAdapter,
    BackendError,
    BackendUnavailableError,
    ModelSession,
    ProbeResult,
    UnknownBackendError,
)
from coral_inference.backends.registry import BackendRegistry

__all__ = [
    "BackendAdapter",
    "BackendError",
    "BackendRegistry",
    "BackendUnavailableError",
    "ModelSession",
    "ProbeResult",
    "UnknownBackendError",
]
