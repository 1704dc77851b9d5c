"""``backends.options.openvino``: the typed settings of the OpenVINO backend.

Coral validates them when the configuration loads (the backend declares this model
as ``OpenVinoBackend.options_model``), so ``device: TPU`` is reported as
``backends.options.openvino.device`` before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class OpenVinoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Offer OpenVINO as a backend.")
    device: Literal["CPU", "GPU", "NPU", "AUTO"] = Field(
        "CPU",
        description=(
            "OpenVINO device: CPU (any x86 CPU), GPU (Intel integrated/discrete GPU), "
            "NPU (Intel Core "
            "Ultra), AUTO (OpenVINO picks, starting on the CPU while the accelerator compiles)."
        ),
    )
    performance_hint: Literal["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"] = Field(
        "THROUGHPUT",
        description=(
            "THROUGHPUT: several streams, so batches and several pipelines run at once; "
            "LATENCY: one "
            "frame as fast as possible; CUMULATIVE_THROUGHPUT: every device of AUTO at once."
        ),
    )
    streams: Annotated[int, Field(ge=1)] | Literal["AUTO"] = Field(
        "AUTO", description="Parallel inference streams (AUTO: from the performance hint)."
    )
    infer_requests: int = Field(
        0, ge=0, description="Async infer requests per model (0: OpenVINO's optimal number)."
    )
    threads: int = Field(0, ge=0, description="CPU inference threads (0: OpenVINO's default).")
    precision: Literal["auto", "f32", "f16", "bf16"] = Field(
        "auto",
        description=(
            "Inference precision: auto keeps f32 on the CPU (the same boxes as ONNX Runtime) "
            "and the "
            "device's default elsewhere (f16 on GPU/NPU); f16/bf16 trade accuracy for speed."
        ),
    )
    cache: bool = Field(True, description="Cache compiled models, so a restart does not recompile.")
    cache_dir: Path | None = Field(
        None,
        description="Model cache directory (default: $XDG_CACHE_HOME/coral/openvino).",
    )
