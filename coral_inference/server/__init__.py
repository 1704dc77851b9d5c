"""Coral inside Roboflow's inference server (its HTTP app and its stream manager).

* :mod:`coral_inference.server.plugin` — what ``coral_workflows`` runs when the engine
  asks it for the Coral context: configuration errors that stay Coral's, storage
  defaults at an absolute location, and the stream-manager worker hooks.
* :mod:`coral_inference.server.worker` — inside a stream-manager pipeline process:
  the pipeline identity, clean shutdown, per-pipeline fps metrics.
* :mod:`coral_inference.server.metrics_export` — per-pipeline Prometheus series of
  every worker gathered into the server's one scrape.
* :mod:`coral_inference.server.launcher` — ``coral-runtime server start``.

Nothing here runs at import.
"""
