"""General extension points a backend distribution uses (the OpenVINO pilot needed each one).

* typed options: a backend declares ``options_model``; ``backends.options.<name>`` is checked
  when the config loads, errors carry dotted paths, the adapter receives the model instance;
* ``ProbeResult.devices``: the devices a backend can use here;
* artifact ``format`` (default: the file suffix) and ``companions``: a backend can load any
  artifact in a format it reads, and a two-file format is verified as a whole;
* ``choose_backend`` asks the adapter which artifacts it loads (``list_artifacts``).
"""

from __future__ import annotations

from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from coral_inference.backends import BackendRegistry, ProbeResult
from coral_inference.config import backend_options
from coral_inference.config.loader import ConfigError, load_config
from coral_inference.models.artifacts import copy_artifacts, ensure_artifact
from coral_inference.models.errors import (
    ArtifactNotFoundError,
    ChecksumMismatchError,
    ManifestError,
)
from coral_inference.models.package import load_package, sha256_of
from coral_inference.plugins import PluginRecord


class DeviceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: Literal["CPU", "GPU"] = "CPU"
    streams: int = 1


class TypedBackend:
    name = "typed"
    options_model = DeviceOptions

    def __init__(self, options=None):
        self.options = options

    def probe(self):
        return ProbeResult(True, "typed", devices=["CPU", "GPU.0"])

    def list_artifacts(self, package):
        # Any ONNX artifact of the package, whatever its key.
        keys = package.artifacts_of_format("onnx")
        if not keys:
            raise ArtifactNotFoundError(f"{package.name}: no onnx artifact")
        return [package.artifact(keys[0])]


class UntypedBackend:
    name = "untyped"

    def __init__(self, options=None):
        self.options = options

    def probe(self):
        return ProbeResult(True, "untyped")


def record(name, obj=None, error=None):
    return PluginRecord(
        "coral_inference.backends", name, f"tests:{name}", "test-dist", "1.0", obj=obj, error=error
    )


@pytest.fixture
def installed(monkeypatch):
    records = [
        record("typed", TypedBackend),
        record("untyped", UntypedBackend),
        record("broken", error="ImportError: nope"),
    ]
    monkeypatch.setattr(backend_options, "discover", lambda group, skip=(): records)
    return records


def problems(*overrides):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=list(overrides), use_env=False)
    return info.value.problems


def test_typed_options_are_checked_with_dotted_paths(installed):
    (problem,) = problems("backends.options.typed.device=TPU")
    assert problem.startswith(
        "backends.options.typed.device = 'TPU' (from --set backends.options.typed.device=TPU)"
    )
    assert "'CPU' or 'GPU'" in problem
    (problem,) = problems("backends.options.typed.devcie=GPU")
    assert problem.startswith("backends.options.typed.devcie = 'GPU'") and "unknown" in problem


def test_typed_options_are_completed_untyped_ones_pass_through(installed):
    loaded = load_config(
        overrides=[
            "backends.options.typed.device=GPU",
            "backends.options.untyped.x=1",
            "backends.options.broken.y=2",
        ],
        use_env=False,
    )
    options = loaded.descriptor.backends.options
    assert options["typed"] == {"device": "GPU", "streams": 1}
    assert options["untyped"] == {"x": 1} and options["broken"] == {"y": 2}
    assert loaded.source_of("backends.options.typed.device").startswith("--set")


def test_unknown_and_builtin_names_are_refused_with_the_fix(installed):
    (problem,) = problems("backends.options.typo.device=CPU")
    assert "no installed backend is named 'typo' (installed: typed, untyped)" in problem
    assert "remove backends.options.typo" in problem
    (problem,) = problems("backends.options.onnxruntime.providers=[cpu]")
    assert "built-in backend: its settings live at backends.onnxruntime" in problem
    # A disabled backend is not registered: its section is not checked.
    load_config(overrides=["backends.disabled=[typo]", "backends.options.typo.a=1"], use_env=False)


def test_registry_hands_the_adapter_its_options_model():
    registry = BackendRegistry({"typed": {"device": "GPU"}, "untyped": {"x": 1}})
    registry.register("typed", TypedBackend)
    registry.register("untyped", UntypedBackend)
    assert registry.get("typed").options == DeviceOptions(device="GPU")
    assert registry.get("untyped").options == {"x": 1}
    assert registry.describe()[0]["devices"] == ["CPU", "GPU.0"]
    assert registry.describe()[1]["devices"] == []
    bad = BackendRegistry({"typed": {"device": "TPU"}}).register("typed", TypedBackend)
    assert bad.adapter is None and "device" in bad.error  # options that bypassed the loader


def test_builtins_declare_their_options_models():
    from coral_inference.backends.onnxruntime import OnnxRuntimeBackend
    from coral_inference.backends.rknn import RknnBackend
    from coral_inference.config.schema import OnnxRuntimeOptions, RknnOptions

    assert backend_options.options_model_of(OnnxRuntimeBackend) is OnnxRuntimeOptions
    assert backend_options.options_model_of(RknnBackend) is RknnOptions
    assert backend_options.options_model_of(UntypedBackend) is None


def write_package(root, artifacts, files):
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (root / name).write_bytes(content)
    manifest = {
        "name": "fmt",
        "classes": ["a"],
        "input": {"width": 32, "height": 32},
        "head": {"type": "yolov8"},
        "artifacts": artifacts,
    }
    (root / "coral-model.yaml").write_text(yaml.safe_dump(manifest))
    return root


def test_artifact_format_defaults_to_the_suffix(tmp_path):
    root = write_package(
        tmp_path / "p",
        {
            "onnxruntime": {"file": "m.onnx"},
            "rknn": {"file": "m.rknn"},
            "other": {"file": "net.xml", "format": "IR"},
        },
        {"m.onnx": b"x", "m.rknn": b"y", "net.xml": b"z"},
    )
    package = load_package(root)
    assert {k: s.kind for k, s in package.manifest.artifacts.items()} == {
        "onnxruntime": "onnx",
        "rknn": "rknn",
        "other": "ir",
    }
    assert package.artifacts_of_format("ONNX") == ["onnxruntime"]
    assert package.artifacts_of_format("ir") == ["other"]


def test_companions_are_verified_and_copied(tmp_path):
    weights = b"weights"
    root = write_package(
        tmp_path / "p",
        {
            "x": {
                "file": "net.xml",
                "format": "ir",
                "companions": [{"file": "net.bin", "sha256": sha256_of_bytes(tmp_path, weights)}],
            }
        },
        {"net.xml": b"<xml/>", "net.bin": weights},
    )
    package = load_package(root)
    assert ensure_artifact(package, "x") == (root / "net.xml").resolve()
    copied = copy_artifacts(package, "x", tmp_path / "out")
    assert sorted(p.name for p in copied) == ["net.bin", "net.xml"]
    (root / "net.bin").write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError, match=r"artifacts.x.companions.0.sha256"):
        ensure_artifact(package, "x")
    (root / "net.bin").unlink()
    with pytest.raises(
        ArtifactNotFoundError, match=r"companion file named by artifacts.x.companions.0.file"
    ):
        ensure_artifact(package, "x")


def test_companions_must_stay_inside_the_package_and_need_a_file(tmp_path):
    root = write_package(
        tmp_path / "p",
        {"x": {"file": "net.xml", "companions": [{"file": "../net.bin"}]}},
        {"net.xml": b""},
    )
    with pytest.raises(
        ManifestError, match=r"artifacts.x.companions.0.file: '../net.bin' points outside"
    ):
        load_package(root)
    root = write_package(
        tmp_path / "q",
        {
            "x": {
                "url": "https://example.invalid/n.xml",
                "sha256": "0" * 64,
                "companions": [{"file": "n.bin"}],
            }
        },
        {},
    )
    with pytest.raises(ManifestError, match=r"companions are supported for in-package artifacts"):
        load_package(root)


def test_choose_backend_asks_the_adapter_which_artifacts_it_loads(tmp_path):
    from types import SimpleNamespace

    from coral_inference.models import loaded

    root = write_package(tmp_path / "p", {"onnxruntime": {"file": "m.onnx"}}, {"m.onnx": b"x"})
    package = load_package(root)
    registry = BackendRegistry()
    registry.register("typed", TypedBackend)
    # What choose_backend reads: the registry and the auto order (a context or a model catalog).
    where = SimpleNamespace(
        backends=registry,
        order=("typed",),
        entries={},
        config=SimpleNamespace(backends=SimpleNamespace(order=["typed"]), models={}),
    )
    assert loaded.choose_backend(where, package, "typed").name == "typed"
    assert loaded.choose_backend(where, package, "auto").name == "typed"


def sha256_of_bytes(tmp_path, data):
    path = tmp_path / "digest.tmp"
    path.write_bytes(data)
    return sha256_of(path)
