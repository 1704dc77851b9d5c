"""Start Roboflow inference's own HTTP server (the app its Docker images serve) on loopback.

Run as ``python tests/server/inference_http.py PORT``; the environment decides the
plugins (``WORKFLOWS_PLUGINS=coral_workflows``) and keeps it offline.
"""

import os
import sys
import tempfile
from pathlib import Path

import uvicorn

from coral_inference import compat

# The server mounts its landing page from paths relative to the working directory
# (its Docker image runs from /app); the pip distribution does not ship that page.
LANDING_DIRS = ("inference/landing/out/static", "inference/landing/out/_next/static")


def build_app():
    workdir = Path(tempfile.mkdtemp(prefix="inference-http-"))
    for rel in LANDING_DIRS:
        (workdir / rel).mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    compat.load_inference_core()
    http_api = compat.import_module("inference.core.interfaces.http.http_api")
    managers = compat.import_module("inference.core.managers.base")
    registries = compat.import_module("inference.core.registries.roboflow")
    model_types = compat.import_module("inference.models.utils").ROBOFLOW_MODEL_TYPES
    manager = managers.ModelManager(model_registry=registries.RoboflowModelRegistry(model_types))
    return http_api.HttpInterface(manager).app


if __name__ == "__main__":
    uvicorn.run(build_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
