"""A faithful test double of ``rknnlite.api.RKNNLite`` (rknn-toolkit-lite2 2.x) backed by ONNX Runtime.

Same signatures, same return conventions (``0``/``-1``, ``None`` on a failed
inference — never exceptions), same data layout (NHWC uint8 in, float32 out).
A "fake .rknn" is the ONNX model plus the ``rknn.config`` settings the real
converter bakes in (``mean_values``, ``std_values``, ``target_platform``), so the
double normalises inside "the model" exactly as an NPU build does.

The board it pretends to run on is ``BOARD``: a filesystem root holding (or
lacking) ``librknnrt.so``, an NPU device node and the device tree, so each
real-world failure (missing runtime, no device, wrong SoC) is reproduced by the
same cause. ``BOARD`` also records concurrency so tests can see every core busy.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from pathlib import Path

import numpy as np

MAGIC = b"RKNNFAKE"
SOCS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562")


class FakeBoard:
    """What the double checks, and what it observed."""

    def __init__(self) -> None:
        self.reset(None)

    def reset(self, root: Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self.inference_delay_s = 0.0
        self.fail_inference = False
        self.rendezvous: threading.Barrier | None = (
            None  # inferences wait here: proves they overlap
        )
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.masks_in_flight: set[int] = set()
        self.max_masks_in_flight: set[int] = set()
        self.masks_used: list[int] = []
        self.input_dtypes: set[str] = set()
        self.violations: list[str] = []
        self.instances: list[RKNNLite] = []

    # facts, read from the fake filesystem like the real runtime's loader and driver would
    def has_library(self) -> bool:
        return self.root is not None and any(
            (self.root / d / "librknnrt.so").exists()
            for d in ("usr/lib", "usr/lib64", "usr/local/lib")
        )

    def has_device(self) -> bool:
        return self.root is not None and any(
            (self.root / n).exists() for n in ("dev/rknpu", "dev/dri/renderD129")
        )

    def soc(self) -> str | None:
        if self.root is None:
            return None
        path = self.root / "proc/device-tree/compatible"
        if not path.exists():
            return None
        for item in path.read_bytes().decode().split("\x00"):
            if item.startswith("rockchip,") and item.split(",", 1)[1] in SOCS:
                return item.split(",", 1)[1]
        return None


BOARD = FakeBoard()


def _log(level: str, message: str) -> None:
    print(f"{level} RKNN: {message}")


class RKNNLite:
    NPU_CORE_AUTO = 0
    NPU_CORE_0 = 1
    NPU_CORE_1 = 2
    NPU_CORE_2 = 4
    NPU_CORE_0_1 = 3
    NPU_CORE_0_1_2 = 7
    NPU_CORE_ALL = 0xFFFF

    def __init__(self, verbose: bool = False, verbose_file: str | None = None):
        self.verbose = verbose
        self._header: dict | None = None
        self._onnx: bytes | None = None
        self._session = None
        self._core_mask: int | None = None
        self._busy = False
        self.released = False
        BOARD.instances.append(self)

    def load_rknn(self, path: str, key_path: str | None = None) -> int:
        try:
            data = Path(path).read_bytes()
        except OSError:
            _log("E", f"load_rknn: {path} does not exist")
            return -1
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
            _log("E", "load_rknn: invalid RKNN model file")
            return -1
        (length,) = struct.unpack("<I", data[len(MAGIC) : len(MAGIC) + 4])
        start = len(MAGIC) + 4
        try:
            self._header = json.loads(data[start : start + length])
        except ValueError:
            _log("E", "load_rknn: invalid RKNN model header")
            return -1
        self._onnx = data[start + length :]
        return 0

    def init_runtime(
        self, target=None, device_id=None, async_mode: bool = False, core_mask: int = NPU_CORE_AUTO
    ) -> int:
        if self._header is None:
            _log("E", "init_runtime: model is not loaded yet, call load_rknn first")
            return -1
        if not BOARD.has_library():
            _log("E", "Can not find dynamic library librknnrt.so")
            return -1
        if not BOARD.has_device():
            _log("E", "failed to open rknpu module, need to insmod rknpu dirver!")
            return -1
        soc = BOARD.soc()
        built_for = self._header.get("target_platform")
        if built_for and soc and built_for != soc:
            _log("E", f"The model is built for {built_for}, but the current platform is {soc}")
            return -1
        valid = (
            {0, 1, 2, 4, 3, 7, 0xFFFF}
            if soc == "rk3588"
            else {0, 1, 2, 3, 0xFFFF}
            if soc == "rk3576"
            else {0}
        )
        if core_mask not in valid:
            _log("E", f"invalid core mask {core_mask} for {soc}")
            return -1
        import onnxruntime

        try:
            self._session = onnxruntime.InferenceSession(
                self._onnx, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # the real runtime logs and returns -1 on a broken model
            _log("E", f"init_runtime: {exc}")
            return -1
        self._core_mask = core_mask
        return 0

    def inference(
        self,
        inputs,
        data_type=None,
        data_format=None,
        inputs_pass_through=None,
        get_frame_id: bool = False,
        reuse_outputs: bool = False,
    ):
        if self._session is None or self.released:
            _log("E", "inference: runtime environment is not inited")
            return None
        if self._busy:
            BOARD.violations.append(
                f"instance {id(self)} (core mask {self._core_mask}) used by two threads at once"
            )
        self._busy = True
        with BOARD.lock:
            BOARD.active += 1
            BOARD.max_active = max(BOARD.max_active, BOARD.active)
            BOARD.masks_in_flight.add(self._core_mask)
            if len(BOARD.masks_in_flight) > len(BOARD.max_masks_in_flight):
                BOARD.max_masks_in_flight = set(BOARD.masks_in_flight)
            BOARD.masks_used.append(self._core_mask)
        try:
            if BOARD.rendezvous is not None:
                BOARD.rendezvous.wait()
            if BOARD.inference_delay_s:
                time.sleep(BOARD.inference_delay_s)
            if BOARD.fail_inference:
                _log("E", "rknn_run: failed to submit!, op id: 1, op name: Conv")
                return None
            return self._run(inputs, data_format)
        finally:
            with BOARD.lock:
                BOARD.active -= 1
                BOARD.masks_in_flight.discard(self._core_mask)
            self._busy = False

    def _run(self, inputs, data_format):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 1:
            _log("E", "inference: inputs must be a list with one array")
            return None
        x = np.asarray(inputs[0])
        BOARD.input_dtypes.add(str(x.dtype))
        layout = (
            data_format[0] if isinstance(data_format, (list, tuple)) else data_format
        ) or "nhwc"
        if x.ndim == 3:
            x = x[None]
        if layout == "nhwc":
            x = x.transpose(0, 3, 1, 2)
        expected = self._session.get_inputs()[0].shape
        if list(x.shape) != list(expected):
            _log(
                "E",
                f"inference: input shape {list(x.shape)} ({layout}) does not match the model {expected}",
            )
            return None
        mean = np.asarray(self._header["mean_values"][0], np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self._header["std_values"][0], np.float32).reshape(1, -1, 1, 1)
        x = (x.astype(np.float32) - mean) / std
        outputs = self._session.run(None, {self._session.get_inputs()[0].name: x})
        return [np.asarray(o, np.float32) for o in outputs]

    def release(self) -> None:
        self.released = True
        self._session = None

    def get_sdk_version(self) -> str:
        return "fake librknnrt 2.3.2 (test double)"

    def list_support_target_platform(self, rknn_model=None):
        return {"support_target_platform": ["rk3588", "rk3576", "rk3568", "rk3566", "rk3562"]}

    def list_devices(self):
        return [], []


def build_fake_rknn(
    onnx_path: Path,
    out_path: Path,
    *,
    target_platform: str = "rk3588",
    mean_values=((0, 0, 0),),
    std_values=((255, 255, 255),),
) -> Path:
    """Write a fake ``.rknn``: what ``rknn.config(...)`` + ``rknn.build()`` would bake in, plus the ONNX."""
    header = json.dumps(
        {
            "target_platform": target_platform,
            "mean_values": [list(v) for v in mean_values],
            "std_values": [list(v) for v in std_values],
        }
    ).encode()
    out_path = Path(out_path)
    out_path.write_bytes(
        MAGIC + struct.pack("<I", len(header)) + header + Path(onnx_path).read_bytes()
    )
    return out_path
