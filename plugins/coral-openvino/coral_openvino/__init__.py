"""Coral's OpenVINO backend, shipped as its own distribution (``coral-openvino``).

Coral finds it only through the ``coral_inference.backends`` entry point this
distribution declares; nothing in Coral's core names it.
"""

from coral_openvino.backend import OpenVinoBackend, OpenVinoDeviceMissingError, OpenVinoError
from coral_openvino.options import OpenVinoOptions
from coral_openvino.session import OpenVinoSession, OpenVinoSessionClosedError

__all__ = [
    "OpenVinoBackend",
    "OpenVinoDeviceMissingError",
    "OpenVinoError",
    "OpenVinoOptions",
    "OpenVinoSession",
    "OpenVinoSessionClosedError",
]
