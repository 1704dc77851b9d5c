"""Typed options through Coral's config and registry; probe() and the missing-device messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from coral_openvino import OpenVinoBackend, OpenVinoDeviceMissingError, OpenVinoOptions

from coral_inference.backends import BackendUnavailableError
from coral_inference.config.loader import ConfigError, load_config


def test_options_are_completed_and_reach_the_adapter_typed(runtime, tmp_path):
    loaded = load_config(
        overrides=[
            "backends.options.openvino.device=AUTO",
            f"backends.options.openvino.cache_dir={tmp_path}",
        ],
        use_env=False,
    )
    section = loaded.descriptor.backends.options["openvino"]
    assert section["device"] == "AUTO" and section["performance_hint"] == "THROUGHPUT"
    assert section["cache_dir"] == str(tmp_path) and section["streams"] == "AUTO"
    context = runtime(loaded)
    adapter = context.get_backend("openvino")
    assert isinstance(adapter.options, OpenVinoOptions)
    assert adapter.options.device == "AUTO" and adapter.options.cache_dir == Path(tmp_path)


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ("backends.options.openvino.streams=0", "backends.options.openvino.streams"),
        (
            "backends.options.openvino.performance_hint=FAST",
            "backends.options.openvino.performance_hint",
        ),
        ("backends.options.openvino.infer_requests=-1", "backends.options.openvino.infer_requests"),
    ],
)
def test_bad_values_are_named_by_dotted_path(override, path):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override], use_env=False)
    assert any(
        p.startswith(f"{path} = ") or p.startswith(f"{path}.") for p in info.value.problems
    ), info.value.problems


def test_compile_properties_follow_the_options(tmp_path):
    config = OpenVinoBackend(
        {"streams": 3, "threads": 2, "cache_dir": str(tmp_path)}
    ).compile_config()
    assert config == {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": "3",
        "INFERENCE_NUM_THREADS": 2,
        "INFERENCE_PRECISION_HINT": "f32",
        "CACHE_DIR": str(tmp_path),
    }
    gpu = OpenVinoBackend(
        {"device": "GPU", "performance_hint": "LATENCY", "cache": False}
    ).compile_config()
    assert gpu == {"PERFORMANCE_HINT": "LATENCY"}  # the device's own precision, no cache
    assert (
        OpenVinoBackend({"precision": "bf16"}).compile_config()["INFERENCE_PRECISION_HINT"]
        == "bf16"
    )


def test_probe_lists_openvinos_devices():
    import openvino

    probe = OpenVinoBackend().probe()
    assert probe.available and probe.devices == list(openvino.Core().available_devices)
    assert "CPU" in probe.devices and probe.details["device_names"]["CPU"]
    assert OpenVinoBackend({"device": "AUTO"}).probe().available
    disabled = OpenVinoBackend({"enabled": False}).probe()
    assert not disabled.available and "backends.options.openvino.enabled: false" in disabled.reason


@pytest.mark.parametrize("device", ["NPU", "GPU"])
def test_a_missing_device_says_why_and_what_to_set(tmp_path, device):
    backend = OpenVinoBackend({"device": device})
    backend.system_root = tmp_path  # a machine without the device node
    present = OpenVinoBackend().available_devices()
    # OpenVINO's real device list, less the device under test if this machine happens to have it.
    backend.available_devices = lambda: [d for d in present if d.split(".")[0] != device]  # type: ignore[method-assign]
    probe = backend.probe()
    assert not probe.available and probe.devices == backend.available_devices()
    node = {"NPU": "/dev/accel", "GPU": "/dev/dri"}[device]
    assert (
        f"OpenVINO device {device} (backends.options.openvino.device) is not available"
        in probe.reason
    )
    assert f"{node} does not exist" in probe.reason
    assert "set backends.options.openvino.device to one of: CPU, AUTO" in probe.reason
    (tmp_path / node.lstrip("/")).mkdir(parents=True)
    assert (
        f"{node} exists but OpenVINO's {device} plugin found no usable device"
        in backend.probe().reason
    )


def test_a_missing_device_refuses_to_load_a_model(runtime, monkeypatch):
    from coral_inference.models import load_package

    present = OpenVinoBackend().available_devices()
    monkeypatch.setattr(
        OpenVinoBackend,
        "available_devices",
        lambda self: [d for d in present if not d.startswith("NPU")],
    )
    with pytest.raises(
        OpenVinoDeviceMissingError,
        match=r"openvino cannot run model 'coral-demo': OpenVINO device NPU",
    ):
        OpenVinoBackend({"device": "NPU"}).prepare_session(load_package("coral-demo"))
    context = runtime({"backends": {"options": {"openvino": {"device": "NPU"}}}})
    with pytest.raises(
        BackendUnavailableError,
        match=r"backend 'openvino' cannot run model 'coral-demo' here: OpenVINO device NPU",
    ):
        context.get_model("coral-demo", backend="openvino")
