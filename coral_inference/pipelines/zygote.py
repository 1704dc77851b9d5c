"""Imported by the pipeline workers' forkserver only: inference's pipeline stack, loaded once.

``coral_inference.pipelines.supervisor`` names this module in
``set_forkserver_preload``; the forkserver imports it before forking any worker, so
every worker starts with inference, the workflow engine and Coral's blocks already
imported (and shares those pages with its siblings). Nothing else imports it.
"""

from __future__ import annotations

import importlib
import logging


def _preload() -> None:
    # in _preload: a failed import is caught by the try around its call (module end)
    from coral_inference import compat

    if compat.inference_info() is None:
        return
    importlib.import_module("coral_inference.inference_adapter.stream")  # inference's video stack
    # The engine's core blocks: importing them is most of a workflow's first compilation.
    for loader in (
        "roboflow_workflows.core_steps.loader",
        "inference.core.workflows.core_steps.loader",
    ):
        try:
            module = importlib.import_module(loader)
        except ImportError:
            continue
        module.load_blocks()
        break
    # in _preload: a failed import is caught by the try around its call (module end)
    from coral_workflows.blocks import load_block_classes

    load_block_classes()
    # preloaded here so that every worker forked from the forkserver starts with them
    import coral_inference.pipelines.runner  # noqa: F401
    import coral_inference.results  # noqa: F401


try:
    _preload()
except Exception:  # noqa: BLE001 - a failed preload only makes each worker import it itself
    logging.getLogger("coral_inference.pipelines").warning("worker preload failed", exc_info=True)
