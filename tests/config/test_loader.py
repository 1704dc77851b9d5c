"""Config sources merge in order defaults < file < env < --set, and errors say where a value came from."""

import json

import pytest

from coral_inference.config import ConfigError, load_config


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "coral.yaml"
    path.write_text(
        "services:\n  http:\n    port: 9001\n    host: 0.0.0.0\nbackends:\n  onnxruntime:\n    providers: [cuda, cpu]\n"
    )
    return path


def test_each_source_overrides_the_one_below(config_file):
    env = {"CORAL_SERVICES__HTTP__PORT": "9002", "CORAL_SERVICES__HTTP__MAX_BODY_BYTES": "4096"}
    loaded = load_config(config_file, environ=env, overrides=["services.http.max_body_bytes=8192"])
    http = loaded.descriptor.services.http
    assert http.host == "0.0.0.0"  # file only
    assert http.port == 9002  # env beats file
    assert http.max_body_bytes == 8192  # --set beats env
    assert loaded.descriptor.services.pipelines.max_pipelines == 8  # default
    assert loaded.source_of("services.http.host") == f"file {config_file}"
    assert loaded.source_of("services.http.port") == "env CORAL_SERVICES__HTTP__PORT"
    assert (
        loaded.source_of("services.http.max_body_bytes")
        == "--set services.http.max_body_bytes=8192"
    )
    assert loaded.source_of("services.pipelines.max_pipelines") == "default"


def test_env_values_are_parsed_as_yaml_and_unrelated_coral_variables_ignored():
    env = {"CORAL_BACKENDS__ONNXRUNTIME__PROVIDERS": "[tensorrt, cpu]", "CORAL_CACHE_DIR": "/x"}
    loaded = load_config(environ=env)
    assert loaded.descriptor.backends.onnxruntime.providers == ["tensorrt", "cpu"]


def test_env_can_be_ignored(config_file):
    loaded = load_config(config_file, environ={"CORAL_SERVICES__HTTP__PORT": "9002"}, use_env=False)
    assert loaded.descriptor.services.http.port == 9001


def test_coral_config_variable_names_the_file(config_file):
    loaded = load_config(environ={"CORAL_CONFIG": str(config_file)})
    assert loaded.file == config_file and loaded.descriptor.services.http.port == 9001


def test_json_files_are_accepted(tmp_path):
    path = tmp_path / "coral.json"
    path.write_text(json.dumps({"platform": "rockchip"}))
    assert load_config(path, environ={}).descriptor.platform == "rockchip"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"overrides": ["services.http.port=abc"]},
            "services.http.port = 'abc' (from --set services.http.port=abc)",
        ),
        (
            {"environ": {"CORAL_SERVICES__HTTP__PORT": "99999"}},
            "services.http.port = 99999 (from env CORAL_SERVICES__HTTP__PORT)",
        ),
        (
            {"overrides": ["servics.http.port=1"]},
            "servics = {'http': {'port': 1}} (from --set servics.http.port=1): unknown field",
        ),
        (
            {"overrides": ["metrics.sinks.db.type=influxdb"]},
            "metrics.sinks.db.url (from --set metrics.sinks.db.type=influxdb): required field is missing",
        ),
    ],
)
def test_errors_name_path_value_and_source(kwargs, expected):
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError) as caught:
        load_config(**kwargs)
    assert expected in str(caught.value)


def test_file_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  http:\n    port: [1]\n")
    with pytest.raises(ConfigError, match=rf"services.http.port = \[1\] \(from file {bad}\)"):
        load_config(bad, environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("services: [\n")
    with pytest.raises(ConfigError, match=rf"{broken}: not valid YAML"):
        load_config(broken, environ={})
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml", environ={})
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listed, environ={})


def test_malformed_override_is_explained():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(overrides=["services.http.port"], environ={})


def test_api_key_hashes_must_be_digests():
    with pytest.raises(ConfigError, match="not a sha256 hex digest"):
        load_config(overrides=["services.auth.api_key_hashes=[secret]"], environ={})
