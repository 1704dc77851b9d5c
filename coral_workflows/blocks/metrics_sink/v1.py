# pyright: reportInvalidTypeForm=false, reportIncompatibleVariableOverride=false
# (Selector(kind=[...]) in annotations and type: Literal[...] narrowing the base
# manifest's type: str, as in Roboflow's own blocks)
"""``coral/metrics_sink@v1``: send named fields and tags to the configured metric sinks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field

from coral_inference.inference_adapter.workflows import (
    BlockResult,
    OutputDefinition,
    Selector,
    WorkflowBlock,
    WorkflowBlockManifest,
    WorkflowImageData,
    kinds,
)
from coral_inference.metrics import MetricsError
from coral_inference.results import is_detections
from coral_inference.runtime.context import RuntimeContext
from coral_inference.server.worker import observe_frame
from coral_workflows.blocks.sink_support import (
    DISABLED_MESSAGE,
    SINK_INIT_PARAMETERS,
    pipeline_source_key,
    sinks_disabled,
)

FIELD_KINDS = [
    kinds.INTEGER_KIND,
    kinds.FLOAT_KIND,
    kinds.FLOAT_ZERO_TO_ONE_KIND,
    kinds.BOOLEAN_KIND,
    kinds.OBJECT_DETECTION_PREDICTION_KIND,
    kinds.INSTANCE_SEGMENTATION_PREDICTION_KIND,
    kinds.KEYPOINT_DETECTION_PREDICTION_KIND,
    kinds.DICTIONARY_KIND,
    kinds.WILDCARD_KIND,
]

LONG_DESCRIPTION = """
Write one metric point per run — a measurement with numeric fields and string
tags — to the metric sinks configured in the Coral runtime (`metrics.sinks`):
InfluxDB v2 (batched, spooled to disk while the server is down), Prometheus
(exposed at `/metrics`) or JSON lines.

**Fields** are literals or selectors: numbers and booleans are written as they
are; detections become their count (`<field>`) plus one count per class
(`<field>_<class>`, zero once a class seen before disappears); a dictionary of
numbers (e.g. line-counter outputs) becomes `<field>_<key>`. Anything else is
rejected with a message naming the field, and the workflow keeps running.

**Tags** label the point (camera, site, zone). The frame's source is added as
tag `source` when `image` is given; in a pipeline process (Coral's web control
plane, the inference server's stream manager) it is the pipeline's key, so two
pipelines of one workflow keep separate series.

**Never blocks:** the point is put on each sink's bounded queue; a slow or
unreachable server costs one queue put. `min_interval_seconds` limits how often a
source writes (e.g. once per second from a 30 fps stream).
"""


class BlockManifest(WorkflowBlockManifest):
    model_config = ConfigDict(
        json_schema_extra={
            "name": "Metrics Sink",
            "version": "v1",
            "short_description": "Send counts and values to InfluxDB, Prometheus or JSON lines.",
            "long_description": LONG_DESCRIPTION,
            "license": "Apache-2.0",
            "block_type": "sink",
            "ui_manifest": {
                "section": "data_storage",
                "icon": "fal fa-chart-line",
                "blockPriority": 6,
            },
        }
    )
    type: Literal["coral/metrics_sink@v1"]
    measurement: Selector(kind=[kinds.STRING_KIND]) | str = Field(
        description="Measurement name (Prometheus exposes fields as <measurement>_<field>).",
        examples=["people_counter", "$inputs.measurement"],
    )
    fields: dict[str, Selector(kind=FIELD_KINDS) | int | float | bool] = Field(
        description="Field name to value: a number, a boolean, detections (counted per class) or a "
        "dict of numbers.",
        examples=[{"people": "$steps.model.predictions", "in": "$steps.line_counter.count_in"}],
    )
    tags: dict[str, Selector(kind=[kinds.STRING_KIND, kinds.INTEGER_KIND]) | str | int] = Field(
        default_factory=dict,
        description="Tag name to value, e.g. the site or zone.",
        examples=[{"site": "warehouse-2", "zone": "$inputs.zone"}],
    )
    image: Selector(kind=[kinds.IMAGE_KIND]) | None = Field(
        default=None,
        description="Optional frame whose source (video_identifier) becomes the `source` tag.",
        examples=["$inputs.image"],
    )
    sinks: list[str] = Field(
        default_factory=list,
        description="Names from metrics.sinks to write to (empty: all configured sinks).",
        examples=[["influx"], ["prometheus", "jsonl"]],
    )
    min_interval_seconds: Selector(kind=[kinds.INTEGER_KIND, kinds.FLOAT_KIND]) | float = Field(
        default=0.0,
        description="Write at most once per this many seconds per source (0: every run).",
        examples=[1.0],
    )

    @classmethod
    def describe_outputs(cls) -> list[OutputDefinition]:
        return [
            OutputDefinition(name="error_status", kind=[kinds.BOOLEAN_KIND]),
            OutputDefinition(name="message", kind=[kinds.STRING_KIND]),
        ]

    @classmethod
    def get_execution_engine_compatibility(cls) -> str | None:
        return ">=1.3.0,<2.0.0"


class MetricsSinkBlockV1(WorkflowBlock):
    def __init__(self, coral_context: RuntimeContext, **engine_parameters: Any):
        self._context = coral_context
        self._disabled = sinks_disabled(engine_parameters)
        self._last_write: dict[str, float] = {}
        self._seen_classes: dict[tuple[str, str], set[str]] = {}
        if not self._disabled:
            # Build the hub (client imports, spool scan) at compile time, not on the first
            # frame; a failure is reported by the first run instead.
            with contextlib.suppress(Exception):
                _ = coral_context.metrics

    @classmethod
    def get_init_parameters(cls) -> list[str]:
        return list(SINK_INIT_PARAMETERS)

    @classmethod
    def get_manifest(cls) -> type[WorkflowBlockManifest]:
        return BlockManifest

    def run(
        self,
        measurement: str,
        fields: dict[str, Any],
        tags: dict[str, Any],
        image: WorkflowImageData | None,
        sinks: list[str],
        min_interval_seconds: float,
    ) -> BlockResult:
        if self._disabled:
            return {"error_status": False, "message": DISABLED_MESSAGE}
        if image is not None:
            observe_frame(self._context, image)
        source = pipeline_source_key(image) if image is not None else None
        key = source or ""
        now = time.monotonic()
        if min_interval_seconds and now - self._last_write.get(key, -1e18) < float(
            min_interval_seconds
        ):
            return {"error_status": False, "message": "skipped: min_interval_seconds not elapsed"}
        try:
            values = self._flatten(fields, key)
            all_tags = {**tags, **({"source": source} if source is not None else {})}
            self._context.metrics.emit(measurement, values, all_tags, sinks or None)
        except MetricsError as exc:
            return {"error_status": True, "message": str(exc)}
        self._last_write[key] = now
        return {"error_status": False, "message": f"sent {len(values)} field(s)"}

    def _flatten(self, fields: dict[str, Any], source: str) -> dict[str, Any]:
        """Detections to per-class counts, dicts to ``<field>_<key>``; scalars pass through."""
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if is_detections(value):
                values[name] = len(value)
                names = value.data.get("class_name")
                unique, counts = (
                    np.unique(np.asarray(names).astype(str), return_counts=True)
                    if names is not None and len(value)
                    else (np.array([]), np.array([]))
                )
                seen = self._seen_classes.setdefault((source, name), set())
                seen.update(unique.tolist())
                present = dict(zip(unique.tolist(), counts.tolist()))
                for cls in seen:
                    values[f"{name}_{cls}"] = present.get(cls, 0)
            elif isinstance(value, Mapping):
                for sub, sub_value in value.items():
                    values[f"{name}_{sub}"] = sub_value
            else:
                values[name] = value
        return values
