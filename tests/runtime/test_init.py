"""init() is explicit and idempotent; shutdown() undoes everything it did."""

import json

import pytest

import coral_inference
from coral_inference.patches import Patch
from coral_inference.runtime import (
    ContextKey,
    RuntimeAlreadyInitialisedError,
    RuntimeClosedError,
    current_context,
    init,
    shutdown,
)


def test_init_twice_with_the_same_config_returns_the_same_context():
    first = init({"platform": "cpu"})
    assert init({"platform": "cpu"}) is first
    assert current_context() is first


def test_init_with_another_config_while_running_is_refused():
    init({"platform": "cpu"})
    with pytest.raises(RuntimeAlreadyInitialisedError, match="shutdown"):
        init({"platform": "jetson"})


def test_package_level_names_are_the_runtime_functions():
    context = coral_inference.init()
    assert coral_inference.current_context() is context
    coral_inference.shutdown()
    assert coral_inference.current_context() is None


def test_shutdown_closes_services_and_disables_patches(tmp_path):
    context = init()
    closed = []

    class Service:
        def close(self):
            closed.append("service")

    key: ContextKey[Service] = ContextKey("s")
    assert context.shared(key, Service) is context.shared(key, Service)
    target = tmp_path  # any object with a writable attribute
    patch = Patch(
        "test_shutdown_patch",
        supported=">=0",
        replacements={"pathlib:PurePath.coral_marker": lambda old, ctx: "patched"},
    )
    import pathlib

    pathlib.PurePath.coral_marker = "original"
    try:
        context.patches.add(patch)
        context.patches.apply({"test_shutdown_patch": True}, context)
        assert (
            context.is_patch_enabled("test_shutdown_patch")
            and pathlib.PurePath.coral_marker == "patched"
        )
        assert shutdown() == []
        assert closed == ["service"]
        assert pathlib.PurePath.coral_marker == "original"
        assert not patch.is_enabled and context.closed
        with pytest.raises(RuntimeClosedError, match="shut down"):
            context.shared(key, Service)
    finally:
        del pathlib.PurePath.coral_marker
    assert target.exists()


def test_a_failing_closer_does_not_stop_the_others():
    context = init()
    calls = []
    context.on_shutdown("first", lambda: calls.append(1))
    context.on_shutdown("broken", lambda: 1 / 0)
    errors = shutdown()
    assert calls == [1] and errors == ["broken: ZeroDivisionError: division by zero"]


def test_describe_is_json_with_platform_inference_backends_patches_plugins():
    described = init().describe()
    json.dumps(described)
    assert {"platform", "inference", "backends", "patches", "plugins"} <= set(described)
    assert described["platform"]["detected_by"]
    names = {b["name"]: b for b in described["backends"]}
    assert names["onnxruntime"]["available"] is True
    assert names["rknn"]["available"] is False and "rknn" in names["rknn"]["reason"].lower()


# Built-in backends only: an installed third-party backend (the coral-openvino pilot in the
# default test run) would be registered and could be the available one auto picks.
BUILTINS_ONLY = {"plugins": {"entry_points": False}}


def test_get_backend_auto_prefers_the_configured_order_among_available_ones():
    context = init(BUILTINS_ONLY)
    assert (
        context.get_backend("auto").name == "onnxruntime"
    )  # rknn first in order but unavailable here
    with pytest.raises(KeyError, match="unknown backend 'tpu'; registered: onnxruntime, rknn"):
        context.get_backend("tpu")


def test_disabled_backends_are_not_registered():
    context = init({**BUILTINS_ONLY, "backends": {"disabled": ["rknn"]}})
    assert context.backends.names() == ["onnxruntime"]
