"""The contract every model backend meets: ``BackendAdapter`` and ``ModelSession``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from coral_inference.models.package import ModelPackage


class BackendError(RuntimeError):
    """A backend failed; the message names the backend, the model and the cause."""


class BackendUnavailableError(BackendError):
    """The backend cannot run on this machine (``probe()`` says why)."""


class UnknownBackendError(KeyError):
    """No backend of that name is registered."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


@dataclass(frozen=True)
class ProbeResult:
    available: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    # Devices this backend can run on here, as its options name them (e.g. "CPU", "GPU.0",
    # "NPU"); empty for a backend without a choice of device. Shown by plugins list and doctor.
    devices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "reason": self.reason,
            "details": self.details,
            "devices": list(self.devices),
        }


@runtime_checkable
class ModelSession(Protocol):
    """A loaded model on one backend."""

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run one preprocessed input; returns the raw output tensors."""
        ...

    def close(self) -> None:
        """Free the runtime's resources; idempotent."""
        ...


@runtime_checkable
class BackendAdapter(Protocol):
    """A runtime that can execute model packages (ONNX Runtime, RKNN, third-party)."""

    name: str

    def probe(self) -> ProbeResult:
        """Whether this backend can run here and, if not, why."""
        ...

    def list_artifacts(self, package: ModelPackage) -> list[Any]:
        """The package artifacts this backend can load."""
        ...

    def download_artifacts(self, package: ModelPackage, dest: Path) -> list[Path]:
        """Fetch this backend's artifacts (URL or path) into ``dest``, sha256 verified."""
        ...

    def prepare_session(
        self, package: ModelPackage, options: dict[str, Any] | None = None
    ) -> ModelSession:
        """Load the package's artifact for this backend."""
        ...

    def preprocess(self, image: np.ndarray, package: ModelPackage) -> Any:
        """Turn a BGR HWC uint8 frame into this runtime's input (layout, dtype, normalisation)."""
        ...
