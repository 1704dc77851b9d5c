"""Importing Coral changes nothing: no patch, no thread, no environment variable, no inference."""

import json
import subprocess
import sys

PROBE = r"""
import json, os, sys, threading
env_before = dict(os.environ)
threads_before = threading.active_count()
modules_before = set(sys.modules)
import coral_inference, coral_workflows
import coral_inference.config, coral_inference.runtime, coral_inference.backends, coral_inference.patches
import coral_workflows.blocks
new_modules = set(sys.modules) - modules_before
print(json.dumps({
    "env_changed": sorted(k for k in set(env_before) | set(os.environ) if env_before.get(k) != os.environ.get(k)),
    "threads": threading.active_count() - threads_before,
    "inference_imported": sorted(m for m in new_modules if m.split(".")[0] in {"inference", "roboflow_workflows", "streamvision", "torch"}),
    "runtime": coral_inference.current_context() is None,
}))
"""


def test_importing_coral_changes_nothing():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"env_changed": [], "threads": 0, "inference_imported": [], "runtime": True}
