"""Wiring of the ``RKNNLite`` test double: a fake RK3588 board on disk and the import path.

Use the ``fake_board`` fixture (import it into a test module or conftest): it puts
``tests/backends/fake_rknnlite`` first on ``sys.path`` so ``import rknnlite.api``
finds the double, builds a board root with ``librknnrt.so``, ``/dev/rknpu`` and an
RK3588 device tree, and points both the double and ``RknnBackend`` at it.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FAKE_PACKAGE_DIR = Path(__file__).resolve().parent / "fake_rknnlite"


@dataclass
class FakeBoardHandle:
    root: Path
    board: object  # rknnlite.api.FakeBoard
    api: object  # the fake rknnlite.api module

    def remove_library(self) -> None:
        (self.root / "usr/lib/librknnrt.so").unlink()

    def remove_device(self) -> None:
        (self.root / "dev/rknpu").unlink()

    def set_soc(self, soc: str) -> None:
        (self.root / "proc/device-tree/compatible").write_bytes(
            f"radxa,test-board\x00rockchip,{soc}\x00".encode()
        )

    def build_rknn(self, onnx_path: Path, out_path: Path, **config) -> Path:
        return self.api.build_fake_rknn(onnx_path, out_path, **config)


@pytest.fixture
def fake_board(tmp_path, monkeypatch):
    from coral_inference.backends.rknn import RknnBackend

    root = tmp_path / "board"
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/librknnrt.so").write_bytes(b"\x7fELF fake")
    (root / "dev").mkdir()
    (root / "dev/rknpu").write_bytes(b"")
    (root / "proc/device-tree").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(FAKE_PACKAGE_DIR))
    for name in [m for m in sys.modules if m == "rknnlite" or m.startswith("rknnlite.")]:
        monkeypatch.delitem(sys.modules, name)
    api = importlib.import_module("rknnlite.api")
    assert Path(api.__file__).is_relative_to(FAKE_PACKAGE_DIR), (
        "a real rknnlite shadows the test double"
    )
    api.BOARD.reset(root)
    monkeypatch.setattr(RknnBackend, "system_root", root)
    handle = FakeBoardHandle(root=root, board=api.BOARD, api=api)
    handle.set_soc("rk3588")
    yield handle
    from coral_inference.runtime import shutdown

    shutdown()  # a runtime the test initialised owns pools; close them before counting leaks
    leaked = [i for i in api.BOARD.instances if not i.released]
    api.BOARD.reset(None)
    for name in [m for m in sys.modules if m == "rknnlite" or m.startswith("rknnlite.")]:
        sys.modules.pop(name, None)
    assert not leaked, f"{len(leaked)} RKNNLite instance(s) were never released"
