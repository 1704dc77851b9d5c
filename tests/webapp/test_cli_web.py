"""coral-runtime web hash-key and the config errors of web serve."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from coral_inference.cli.main import app
from coral_inference.config.schema import AuthConfig
from coral_inference.webapp.auth import hash_key

runner = CliRunner()


def test_hash_key_prints_the_digest_of_a_given_key_and_never_the_key():
    result = runner.invoke(app, ["web", "hash-key", "s3cret"])
    assert result.exit_code == 0
    assert f"sha256: {hash_key('s3cret')}" in result.output and "s3cret" not in result.output


def test_hash_key_generates_a_key_whose_digest_the_config_accepts():
    result = runner.invoke(app, ["web", "hash-key"])
    key = re.search(r"key:\s+(\S+)", result.output).group(1)
    digest = re.search(r"sha256: ([0-9a-f]{64})", result.output).group(1)
    assert hash_key(key) == digest
    assert AuthConfig(api_key_hashes=[digest]).api_key_hashes == [digest]


def test_hash_key_reads_stdin_and_refuses_an_empty_key():
    assert (
        hash_key("from-stdin")
        in runner.invoke(app, ["web", "hash-key", "--stdin"], input="from-stdin\n").output
    )
    assert runner.invoke(app, ["web", "hash-key", "--stdin"], input="\n").exit_code == 2


def test_serve_refuses_an_invalid_configuration_naming_the_setting(tmp_path):
    result = runner.invoke(app, ["web", "serve", "--no-env", "--set", "services.http.port=99999"])
    assert result.exit_code == 2
    assert "services.http.port" in result.output
