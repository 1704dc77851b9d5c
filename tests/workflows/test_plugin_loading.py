"""The engine loads coral_workflows through WORKFLOWS_PLUGINS and compiles a workflow with a coral block."""

import json
import os
import subprocess
import sys

PROBE = r"""
import json
from coral_inference.inference_adapter.workflows import ExecutionEngine, StepExecutionMode
definition = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "image"}],
    "steps": [{"type": "coral/object_detection_model@v1", "name": "detect", "images": "$inputs.image", "model": "coral-demo"}],
    "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.detect.predictions"}],
}
engine = ExecutionEngine.init(
    workflow_definition=definition,
    init_parameters={"workflows_core.model_manager": None, "workflows_core.api_key": None,
                     "workflows_core.step_execution_mode": StepExecutionMode.LOCAL},
)
import coral_inference
ctx = coral_inference.current_context()
print(json.dumps({"compiled": type(engine).__name__, "implicit_init": ctx.init_source if ctx else None}))
"""


def test_execution_engine_compiles_a_workflow_with_the_plugin_loaded_from_env(require_inference):
    env = {**os.environ, "WORKFLOWS_PLUGINS": "coral_workflows", "DISABLE_VERSION_CHECK": "True"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["compiled"] == "ExecutionEngine"
    # Nobody called coral_inference.init(): the plugin's initializer did it once, from the environment.
    assert (
        result["implicit_init"] == "implicit init by coral_workflows (CORAL_CONFIG / environment)"
    )
