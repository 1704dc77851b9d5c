"""Which hardware Coral runs on, read from files the kernel and vendor images provide.

Never runs a binary: the device tree (``/proc/device-tree/compatible``), the Jetson
release file (``/etc/nv_tegra_release``), the NPU device nodes and the CPU
architecture are enough.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROCKCHIP_NPU_SOCS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562", "rv1106", "rv1103")


@dataclass(frozen=True)
class PlatformInfo:
    kind: str  # rockchip | jetson | cpu
    soc: str | None
    model: str | None
    machine: str
    detected_by: str
    evidence: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "soc": self.soc,
            "model": self.model,
            "machine": self.machine,
            "detected_by": self.detected_by,
            "evidence": self.evidence,
        }


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def detect_platform(
    requested: str = "auto", *, root: Path = Path("/"), machine: str | None = None
) -> PlatformInfo:
    """Detect the platform under ``root`` (a fake tree in tests); ``requested`` overrides."""
    machine = machine or _platform.machine()
    evidence: list[str] = []
    compatible_raw = _read(root / "proc/device-tree/compatible")
    compatible = [c for c in (compatible_raw or "").split("\x00") if c]
    model = (_read(root / "proc/device-tree/model") or "").strip("\x00\n ") or None
    if compatible:
        evidence.append(f"/proc/device-tree/compatible: {', '.join(compatible)}")
    soc = next(
        (
            c.split(",", 1)[1]
            for c in compatible
            if c.startswith("rockchip,") and c.split(",", 1)[1] in ROCKCHIP_NPU_SOCS
        ),
        None,
    )
    tegra = _read(root / "etc/nv_tegra_release")
    if tegra:
        evidence.append(f"/etc/nv_tegra_release: {tegra.splitlines()[0].strip()}")
    for node in ("dev/rknpu", "sys/kernel/debug/rknpu", "sys/class/devfreq/fdab0000.npu"):
        if (root / node).exists():
            evidence.append(f"/{node} exists")

    if requested != "auto":
        return PlatformInfo(requested, soc, model, machine, "set in config (platform)", evidence)
    if soc is not None:
        return PlatformInfo("rockchip", soc, model, machine, "device tree", evidence)
    if tegra or any("nvidia,tegra" in c for c in compatible):
        tegra_soc = next(
            (c.split(",", 1)[1] for c in compatible if c.startswith("nvidia,tegra")), None
        )
        return PlatformInfo(
            "jetson",
            tegra_soc,
            model,
            machine,
            "nv_tegra_release" if tegra else "device tree",
            evidence,
        )
    evidence.append(f"architecture {machine}, no NPU or Jetson marker found")
    return PlatformInfo("cpu", None, model, machine, "no accelerator markers", evidence)
