"""``coral-runtime doctor``: environment checks, each with the fix when it fails."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from coral_inference import compat
from coral_inference.runtime.context import RuntimeContext


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def run_checks(context: RuntimeContext) -> list[Check]:
    cfg = context.config
    checks = [_python(), _inference()]
    for row in context.backends.describe():
        status = "ok" if row.get("available") else "warn"
        devices = f" (devices: {', '.join(row['devices'])})" if row.get("devices") else ""
        checks.append(
            Check(
                f"backend {row['name']}",
                status,
                f"{row.get('reason')}{devices}",
                "" if status == "ok" else "only needed on hardware that has it",
            )
        )
    if not context.backends.available():
        checks[-1].status = "fail"
        checks.append(
            Check("any backend", "fail", "no backend can run models", "pip install onnxruntime")
        )
    checks.append(_h264())
    checks.append(_plugins_env(cfg.plugins.workflows))
    checks.append(_disk(cfg.storage.root))
    for row in context.patches.describe():
        if row["state"] in {"refused", "failed"}:
            checks.append(
                Check(
                    f"patch {row['name']}",
                    "warn",
                    row["reason"],
                    f"set patches.{row['name']}: false, or install a supported inference",
                )
            )
    return checks


def _python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check(
        "python",
        "ok" if ok else "fail",
        sys.version.split()[0],
        "" if ok else "use Python 3.10-3.12",
    )


def _inference() -> Check:
    info = compat.inference_info()
    if info is None:
        return Check(
            "inference",
            "fail",
            "not installed",
            f"pip install 'inference{compat.SUPPORTED_INFERENCE}' (or inference-cpu / inference-gpu)",
        )
    if not info.supported:
        return Check(
            "inference",
            "fail",
            f"{info.distribution} {info.version} not in {compat.SUPPORTED_INFERENCE}",
            f"pip install '{info.distribution}{compat.SUPPORTED_INFERENCE}'",
        )
    return Check(
        "inference", "ok", f"{info.distribution} {info.version} (engine in {info.engine_module})"
    )


def _h264() -> Check:
    if importlib.util.find_spec("av") is None:
        return Check("video encoder", "fail", "PyAV is not installed", "pip install av")
    # heavy: PyAV loads FFmpeg's libraries; imported once find_spec saw it
    import av

    try:
        av.Codec("libx264", "w")
        return Check("video encoder", "ok", f"PyAV {av.__version__} with libx264")
    except Exception:
        return Check(
            "video encoder",
            "warn",
            "libx264 missing: recordings fall back to mpeg4",
            "install PyAV from its wheels (they carry libx264)",
        )


def _plugins_env(modules: list[str]) -> Check:
    value = os.environ.get("WORKFLOWS_PLUGINS", "")
    names = value.split(",") if value else []
    missing = [m for m in modules if m not in names]
    if not missing:
        return Check("WORKFLOWS_PLUGINS", "ok", value)
    return Check(
        "WORKFLOWS_PLUGINS",
        "warn",
        f"{', '.join(missing)} not in WORKFLOWS_PLUGINS (needed by an inference server you start yourself)",
        f"export WORKFLOWS_PLUGINS={','.join(names + missing)} (no spaces)",
    )


def _disk(root: Path) -> Check:
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    free_gb = usage.free / 1024**3
    status = "ok" if free_gb >= 2 else "warn"
    return Check(
        "disk",
        status,
        f"{free_gb:.1f} GiB free at {probe}",
        ""
        if status == "ok"
        else "free space or lower retention (services.monitoring.min_free_bytes)",
    )
