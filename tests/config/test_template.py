"""The commented default file round-trips to the defaults."""

import yaml

from coral_inference.config import RuntimeDescriptor, load_config
from coral_inference.config.template import config_reference, render_default_config


def test_default_file_is_commented_and_loads_to_the_defaults(tmp_path):
    text = render_default_config()
    assert "# Preference order when a model asks for backend 'auto'." in text
    path = tmp_path / "coral.yaml"
    path.write_text(text)
    assert yaml.safe_load(text)  # plain YAML
    assert load_config(path, environ={}).descriptor == RuntimeDescriptor()


def test_reference_lists_every_leaf_with_a_description():
    rows = {path: desc for path, _, desc in config_reference()}
    assert "services.http.port" in rows and rows["services.http.port"]
    assert "backends.rknn.pool_size" in rows
