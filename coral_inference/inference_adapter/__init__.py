"""Coral's one adapter to Roboflow ``inference``: ordinary imports, after ``inference.core``.

Importing this package (or any module in it) first runs
``compat.load_inference_core()`` — version check, offline defaults, the set-once
engine configuration — and only then imports ``inference``. Nothing imports it at
``import coral_inference`` / ``import coral_workflows``: block modules are imported by
the engine's ``load_blocks()``, and runtime code that needs inference imports an
adapter module inside the function that needs it (a deferred heavy optional
dependency, commented as such).

Modules:

* ``workflows``: what a block is made of — ``WorkflowBlock``, ``WorkflowBlockManifest``,
  ``BlockResult``, ``OutputDefinition``, ``WorkflowImageData``, ``Batch``,
  ``VideoMetadata``, ``Selector``, the ``kinds`` module, the sv-detections helpers, the
  ``ExecutionEngine`` and ``StepExecutionMode``.
* ``stream``: ``InferencePipeline``, ``VideoFrame``, ``PipelineWatchDog`` (the watchdog base).
* ``models``: ``Model``, ``ModelRegistry``, ``RoboflowModelRegistry``, ``ModelManager``,
  ``ModelNotRecognisedError``, the response entities and ``load_image_bgr``.

How a block imports (follow this in a new block)::

    from coral_inference.inference_adapter.workflows import (
        BlockResult, OutputDefinition, Selector, WorkflowBlock, WorkflowBlockManifest,
        WorkflowImageData, kinds,
    )

    class BlockManifest(WorkflowBlockManifest):
        image: Selector(kind=[kinds.IMAGE_KIND]) = Field(...)

    class MyBlockV1(WorkflowBlock):
        def run(self, image: WorkflowImageData, ...) -> BlockResult: ...

``Selector(kind=[...])`` is a call in an annotation and ``type: Literal[...]`` narrows
the base manifest's ``type: str``, as in Roboflow's own blocks; block modules therefore
start with ``# pyright: reportInvalidTypeForm=false, reportIncompatibleVariableOverride=false``.

Types: the canonical homes of these names moved (``roboflow_workflows`` in 1.6.1,
``streamvision`` in 1.8.0); ``inference`` keeps the legacy ``inference.core.*`` names
as aliases of the same module objects. At run time the adapter imports the legacy
names (they resolve on every supported release); for the type checker it imports the
canonical modules of the locked release, which are those very objects.
"""

from __future__ import annotations

from coral_inference import compat

compat.load_inference_core()
