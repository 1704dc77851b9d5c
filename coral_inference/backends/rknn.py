"""Rockchip NPU backend through ``rknnlite.api.RKNNLite`` (imported lazily).

RKNN Lite reports failure through return values (``-1`` from ``load_rknn`` and
``init_runtime``, ``None`` from ``inference``), not exceptions. Every one is
checked here and turned into a specific ``RknnError`` that names the model and
the cause, found by reading facts after the failure: is ``librknnrt.so``
installed, is there an NPU device node, was the ``.rknn`` built for this SoC.

Throughput comes from a pool: one ``RKNNLite`` per NPU core (RK3588 has three,
masks 1, 2, 4), each used by one thread at a time, so concurrent frames run on
all cores at once. Input is NHWC uint8 RGB by default — normalisation is baked
into the ``.rknn`` at conversion (``rknn.config(mean_values, std_values)``).
"""

from __future__ import annotations

import ctypes.util
import importlib
import importlib.util
import logging
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np

from coral_inference.backends.base import BackendError, BackendUnavailableError, ProbeResult
from coral_inference.config.schema import RknnOptions
from coral_inference.models.artifacts import copy_artifacts, ensure_artifact
from coral_inference.models.package import InputOverride
from coral_inference.models.preprocess import preprocess_image
from coral_inference.platform import detect_platform

logger = logging.getLogger("coral_inference.backends.rknn")

LIBRARY_DIRS = ("usr/lib", "usr/lib64", "usr/local/lib", "usr/lib/aarch64-linux-gnu")
DEVICE_NODES = ("dev/rknpu", "dev/dri/renderD129")
CORE_MASKS = {"auto": 0, "0": 1, "1": 2, "2": 4, "0_1": 3, "0_1_2": 7, "all": 0xFFFF}
NPU_CORES = {"rk3588": 3, "rk3576": 2}  # other Rockchip NPUs have one core: masks do not apply
RUNTIME_INSTALL_HINT = (
    "install the Rockchip NPU runtime: copy librknnrt.so (rknn-toolkit2 repository, "
    "rknpu2/runtime/Linux/librknn_api/aarch64/, same version as rknn-toolkit-lite2) to /usr/lib"
)


class RknnError(BackendError):
    """RKNN Lite reported a failure; the message names the model and the cause."""


class RknnRuntimeMissingError(RknnError):
    """``librknnrt.so`` (the NPU user-space runtime) is not installed."""


class RknnDeviceError(RknnError):
    """No NPU device node: driver not loaded, or a container without the device."""


class RknnPlatformMismatchError(RknnError):
    """The ``.rknn`` was built for another SoC than this board's."""


class RknnLoadError(RknnError):
    """``load_rknn`` refused the file."""


class RknnInferenceError(RknnError):
    """``inference`` returned ``None``."""


class RknnSession:
    """One ``RKNNLite`` bound to a core mask; not thread-safe (the pool serialises use)."""

    def __init__(self, lite: Any, *, model: str, path: Path, core_mask: int, data_format: str):
        self._lite = lite
        self.model = model
        self.path = path
        self.core_mask = core_mask
        self.data_format = data_format
        self._released = False

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        if self._released:
            raise RuntimeError(f"rknn session of model {self.model!r} was released")
        outputs = self._lite.inference(inputs=[tensor], data_format=self.data_format)
        if outputs is None:
            raise RknnInferenceError(
                f"rknn: inference returned None for model {self.model!r} (core mask {self.core_mask}, input "
                f"{list(tensor.shape)} {tensor.dtype} {self.data_format}): the runtime rejected the input or the "
                f"NPU failed; the RKNN log above has the detail (an input shape or dtype different from the "
                f"one the .rknn was built with is the usual cause)"
            )
        return [np.asarray(o) for o in outputs]

    def close(self) -> None:
        if not self._released:
            self._released = True
            self._lite.release()


class RknnSessionPool:
    """Sessions spread over NPU cores; ``run`` borrows an idle one, so callers run in parallel."""

    def __init__(
        self, sessions: list[RknnSession], *, model: str, input_spec: Any = None, head: Any = None
    ):
        if not sessions:
            raise ValueError("an RKNN session pool needs at least one session")
        self.model = model
        self.input_spec = input_spec
        self.head = head
        self.sessions = list(sessions)
        self.core_masks = [s.core_mask for s in sessions]
        self._idle: queue.Queue[RknnSession | None] = queue.Queue()
        for session in sessions:
            self._idle.put(session)
        self._closed = False
        self._close_lock = threading.Lock()

    @property
    def concurrency(self) -> int:
        return len(self.sessions)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        if self._closed:
            raise RuntimeError(f"rknn session pool of model {self.model!r} is closed")
        session = self._idle.get()
        if session is None:  # close() drained the pool while we waited
            self._idle.put(None)
            raise RuntimeError(f"rknn session pool of model {self.model!r} is closed")
        try:
            return session.run(tensor)
        finally:
            self._idle.put(session)

    def close(self, timeout: float = 10.0) -> None:
        """Release every session, waiting up to ``timeout`` for runs in flight."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        pending = list(self.sessions)
        for _ in range(len(self.sessions)):
            try:
                session = self._idle.get(timeout=timeout)
            except queue.Empty:
                logger.warning(
                    "rknn: model %r: a run did not finish within %.0f s; releasing anyway",
                    self.model,
                    timeout,
                )
                break
            if session is not None:
                session.close()
                pending.remove(session)
        for session in pending:
            session.close()
        self._idle.put(None)  # wakes any caller still waiting for a session

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "rknn",
            "artifact": str(self.sessions[0].path),
            "core_masks": self.core_masks,
        }


class RknnBackend:
    name = "rknn"
    options_model = RknnOptions
    # Filesystem root the facts are read from; tests point it at a fake board.
    system_root = Path("/")

    def __init__(self, options: RknnOptions | dict[str, Any] | None = None):
        self.options = (
            options
            if isinstance(options, RknnOptions)
            else RknnOptions.model_validate(options or {})
        )

    # ------------------------------------------------------------------ facts

    def runtime_library(self) -> str | None:
        for directory in LIBRARY_DIRS:
            candidate = self.system_root / directory / "librknnrt.so"
            if candidate.exists():
                return str(candidate)
        if self.system_root == Path("/"):
            return ctypes.util.find_library("rknnrt")
        return None

    def device_node(self) -> str | None:
        return next(
            (f"/{node}" for node in DEVICE_NODES if (self.system_root / node).exists()), None
        )

    def soc(self) -> str | None:
        return detect_platform(root=self.system_root).soc

    def probe(self) -> ProbeResult:
        if not self.options.enabled:
            return ProbeResult(False, "disabled in config (backends.rknn.enabled: false)")
        if importlib.util.find_spec("rknnlite") is None:
            return ProbeResult(
                False,
                "rknn-toolkit-lite2 is not installed (aarch64 boards only): pip install rknn-toolkit-lite2",
            )
        library = self.runtime_library()
        if library is None:
            return ProbeResult(False, f"librknnrt.so not found: {RUNTIME_INSTALL_HINT}")
        device = self.device_node()
        if device is None:
            return ProbeResult(
                False,
                f"no NPU device node ({', '.join('/' + n for n in DEVICE_NODES)}): {_DEVICE_HINT}",
            )
        soc = self.soc()
        return ProbeResult(
            True,
            f"RKNN Lite with {library}, NPU {device}{f' on {soc}' if soc else ''}",
            {"library": library, "device": device, "soc": soc},
        )

    # ------------------------------------------------------------------ artifacts

    def list_artifacts(self, package) -> list[Any]:
        return [package.artifact(self.name)]

    def download_artifacts(self, package, dest: Path) -> list[Path]:
        return copy_artifacts(package, self.name, Path(dest))

    def input_spec(self, package) -> Any:
        return package.input_for(self.name, InputOverride(layout="NHWC", dtype="uint8"))

    def preprocess(self, image: np.ndarray, package) -> np.ndarray:
        return preprocess_image(image, self.input_spec(package))[0]

    # ------------------------------------------------------------------ sessions

    def core_masks(self, options: RknnOptions | None = None) -> list[int]:
        """One core mask per pooled session: round robin over ``pool_cores`` on multi-core NPUs."""
        settings = options or self.options
        soc = self.soc()
        cores = NPU_CORES.get(soc, 1) if soc else None  # None: unknown board, trust the config
        if cores == 1:
            return [CORE_MASKS["auto"]]
        if settings.pool_size == 1:
            return [CORE_MASKS[settings.core_mask]]
        usable = [c for c in settings.pool_cores if cores is None or int(c) < cores] or ["0"]
        return [CORE_MASKS[usable[i % len(usable)]] for i in range(settings.pool_size)]

    def prepare_session(self, package, options: dict[str, Any] | None = None) -> RknnSessionPool:
        settings = (
            RknnOptions.model_validate({**self.options.model_dump(), **options})
            if options
            else self.options
        )
        lite_class = self._lite_class(package.name)
        path = ensure_artifact(package, self.name)
        spec = self.input_spec(package)
        data_format = spec.layout.lower()
        target = package.artifact(self.name).target_platform
        sessions: list[RknnSession] = []
        try:
            for mask in self.core_masks(settings):
                lite = lite_class(verbose=False)
                ret = lite.load_rknn(str(path))
                if ret != 0:
                    lite.release()
                    raise RknnLoadError(
                        f"rknn: load_rknn returned {ret} for model {package.name!r} ({path}): not a valid .rknn "
                        f"file (corrupt, truncated, or built by an rknn-toolkit2 newer than this runtime); "
                        f"rebuild it with: coral-runtime models convert"
                    )
                ret = lite.init_runtime(core_mask=mask)
                if ret != 0:
                    lite.release()
                    raise self._init_failure(package.name, path, mask, ret, target)
                sessions.append(
                    RknnSession(
                        lite, model=package.name, path=path, core_mask=mask, data_format=data_format
                    )
                )
        except BaseException:
            for session in sessions:
                session.close()
            raise
        logger.info(
            "rknn: model %r on core masks %s", package.name, [s.core_mask for s in sessions]
        )
        return RknnSessionPool(
            sessions, model=package.name, input_spec=spec, head=package.head_for(self.name)
        )

    def _lite_class(self, model: str) -> Any:
        try:
            module = importlib.import_module("rknnlite.api")
            return module.RKNNLite
        except (ImportError, AttributeError) as exc:
            raise BackendUnavailableError(
                f"rknn cannot run model {model!r}: rknnlite.api.RKNNLite cannot be imported ({exc}); "
                f"install rknn-toolkit-lite2 on the board (aarch64): pip install rknn-toolkit-lite2"
            ) from exc

    def _init_failure(
        self, model: str, path: Path, mask: int, ret: Any, target: str | None
    ) -> RknnError:
        where = f"rknn: init_runtime returned {ret} for model {model!r} ({path}, core mask {mask})"
        if self.runtime_library() is None:
            return RknnRuntimeMissingError(
                f"{where}: librknnrt.so not found; {RUNTIME_INSTALL_HINT}"
            )
        if self.device_node() is None:
            return RknnDeviceError(
                f"{where}: no NPU device node ({', '.join('/' + n for n in DEVICE_NODES)}); {_DEVICE_HINT}"
            )
        soc = self.soc()
        if target and soc and target.lower() != soc.lower():
            return RknnPlatformMismatchError(
                f"{where}: the model was built for {target} but this board is {soc} "
                f"(/proc/device-tree/compatible); rebuild it with target_platform={soc!r}: "
                f"coral-runtime models convert --target {soc}"
            )
        return RknnError(
            f"{where}: the runtime refused to start; check the RKNN log above, `dmesg | grep -i rknpu`, "
            f"and that librknnrt.so and rknn-toolkit-lite2 have the same version"
        )


_DEVICE_HINT = (
    "the rknpu kernel driver is not loaded or this container cannot see the device; run on the board "
    "(check `dmesg | grep -i rknpu`) or pass the device in, e.g. docker run --device /dev/dri"
)
