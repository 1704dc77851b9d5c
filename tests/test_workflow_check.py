"""Bad workflow definitions are explained by step and field."""

import pytest

from coral_inference.workflow_check import InvalidWorkflowError, check_workflow, structural_problems


def workflow(steps, outputs=None):
    return {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": steps,
        "outputs": outputs
        or [{"type": "JsonField", "name": "out", "selector": "$steps.blur.image"}],
    }


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            [{"type": "roboflow_core/image_blurr@v1", "name": "blur", "image": "$inputs.image"}],
            "step 'blur', field 'type': unknown block type 'roboflow_core/image_blurr@v1'; did you mean 'roboflow_core/image_blur@v1'?",
        ),
        (
            [{"type": "roboflow_core/image_blur@v1", "name": "blur"}],
            "step 'blur', field 'image': Field required",
        ),
        (
            [
                {
                    "type": "roboflow_core/image_blur@v1",
                    "name": "blur",
                    "image": "$steps.nothere.image",
                }
            ],
            "step 'blur', field 'image': Workflow references '$steps.nothere'",
        ),
    ],
)
def test_engine_errors_name_step_and_field(steps, expected, require_inference):
    with pytest.raises(InvalidWorkflowError) as caught:
        check_workflow(workflow(steps), plugins=[])
    assert expected in str(caught.value)


def test_a_valid_workflow_passes(require_inference):
    check_workflow(
        workflow(
            [{"type": "roboflow_core/image_blur@v1", "name": "blur", "image": "$inputs.image"}]
        ),
        plugins=[],
    )


def test_structure_is_checked_without_the_engine():
    assert [str(p) for p in structural_problems([])] == [
        "workflow: expected a JSON object, got list"
    ]
    problems = [
        str(p)
        for p in structural_problems({"version": "1.0", "inputs": [], "steps": [{"name": "a"}]})
    ]
    assert problems == [
        "field 'outputs': missing (a workflow has 'version', 'inputs', 'steps' and 'outputs')",
        "step 'a', field 'type': missing",
    ]


def test_plugins_are_added_after_the_users_own_once_each():
    from coral_inference.workflow_check import with_plugins

    assert with_plugins("user_plugin", ["coral_workflows"]) == "user_plugin,coral_workflows"
    assert with_plugins("coral_workflows,x", ["coral_workflows", "y", "y"]) == "coral_workflows,x,y"
    assert with_plugins(None, ["coral_workflows"]) == "coral_workflows"


def test_a_roboflow_export_is_unwrapped_and_a_bare_definition_kept():
    from coral_inference.workflow_check import unwrap_specification

    definition = {"version": "1.0", "steps": [], "outputs": []}
    assert unwrap_specification({"specification": definition}) is definition
    assert unwrap_specification(definition) is definition
    assert unwrap_specification({"specification": "not a dict"}) == {"specification": "not a dict"}
