"""Coral's Roboflow Workflows plugin: load it with ``WORKFLOWS_PLUGINS=coral_workflows``.

The engine calls ``load_blocks()`` and ``load_kinds()`` when it compiles a
workflow; only then are the block modules (and so ``inference``) imported. When
``CORAL_CONFIG`` is set, that first compilation also initialises Coral, so the
patches the config enables apply to workflows made only of core blocks too.
Blocks receive the Coral runtime context through ``REGISTERED_INITIALIZERS``: the
current ``coral_inference.init()`` context, or, inside an inference server where
nobody called ``init``, one implicit init from ``CORAL_CONFIG`` / ``CORAL_*``
(``coral_inference.server.plugin``): a bad config fails only the steps that need
Coral, with its file and dotted path, and inside a stream-manager pipeline process
the pipeline's identity and clean shutdown are attached.
"""

from __future__ import annotations

import os
from typing import Any


def load_blocks() -> list[type]:
    # deferred: `import coral_workflows` (the WORKFLOWS_PLUGINS entry) loads no block
    # module until inference calls load_blocks
    from coral_workflows.blocks import load_block_classes

    blocks = load_block_classes()
    if os.environ.get("CORAL_CONFIG"):
        # A server pointed at a Coral config wants Coral's patches (e.g. coral/<name> ids
        # in core model blocks) even for a workflow that holds no coral block; a bad
        # config is left to the steps that need Coral.
        from coral_inference.server.plugin import initialise_for_compilation

        initialise_for_compilation()
    return blocks


def load_kinds() -> list[Any]:
    return []


def _coral_context() -> Any:
    # config stack (pydantic, yaml: ~0.9 s) kept out of `import coral_workflows`
    from coral_inference.server.plugin import plugin_context

    return plugin_context()


REGISTERED_INITIALIZERS = {"coral_context": _coral_context}
