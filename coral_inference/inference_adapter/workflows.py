"""The Workflows names a block or an engine caller needs (see the package docstring).

Importing this submodule runs the package's ``__init__`` first, which loads
``inference.core`` before these imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roboflow_workflows.core_steps.common.entities import StepExecutionMode
    from roboflow_workflows.core_steps.common.utils import (
        attach_parents_coordinates_to_batch_of_sv_detections,
        attach_prediction_type_info_to_sv_detections_batch,
    )
    from roboflow_workflows.execution_engine.core import ExecutionEngine
    from roboflow_workflows.execution_engine.entities import types as kinds
    from roboflow_workflows.execution_engine.entities.base import (
        Batch,
        ImageParentMetadata,
        OutputDefinition,
        VideoMetadata,
        WorkflowImageData,
    )
    from roboflow_workflows.execution_engine.entities.types import Selector
    from roboflow_workflows.execution_engine.introspection.blocks_loader import (
        describe_available_blocks,
    )
    from roboflow_workflows.prototypes.block import (
        BlockResult,
        WorkflowBlock,
        WorkflowBlockManifest,
    )
else:
    from inference.core.workflows.core_steps.common.entities import StepExecutionMode
    from inference.core.workflows.core_steps.common.utils import (
        attach_parents_coordinates_to_batch_of_sv_detections,
        attach_prediction_type_info_to_sv_detections_batch,
    )
    from inference.core.workflows.execution_engine.core import ExecutionEngine
    from inference.core.workflows.execution_engine.entities import types as kinds
    from inference.core.workflows.execution_engine.entities.base import (
        Batch,
        ImageParentMetadata,
        OutputDefinition,
        VideoMetadata,
        WorkflowImageData,
    )
    from inference.core.workflows.execution_engine.entities.types import Selector
    from inference.core.workflows.execution_engine.introspection.blocks_loader import (
        describe_available_blocks,
    )
    from inference.core.workflows.prototypes.block import (
        BlockResult,
        WorkflowBlock,
        WorkflowBlockManifest,
    )

__all__ = [
    "Batch",
    "BlockResult",
    "ExecutionEngine",
    "ImageParentMetadata",
    "OutputDefinition",
    "Selector",
    "StepExecutionMode",
    "VideoMetadata",
    "WorkflowBlock",
    "WorkflowBlockManifest",
    "WorkflowImageData",
    "attach_parents_coordinates_to_batch_of_sv_detections",
    "attach_prediction_type_info_to_sv_detections_batch",
    "describe_available_blocks",
    "kinds",
]
