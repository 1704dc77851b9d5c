"""Fixtures of the web-plane tests: a config rooted in tmp_path and an in-process client."""

from __future__ import annotations

import json

import pytest

from .fakes import FakeRunner, workflow
from .support import web_config


@pytest.fixture
def config(tmp_path) -> dict:
    cfg = web_config(tmp_path)
    (tmp_path / "workflows" / "blur.json").write_text(json.dumps(workflow()))
    return cfg


@pytest.fixture
def make_client():
    """Build an app over FakeRunner and enter its lifespan; closed at teardown."""
    from fastapi.testclient import TestClient

    from coral_inference.webapp import create_web_app

    clients = []

    def _make(cfg: dict, **overrides) -> TestClient:
        overrides.setdefault("runner_factory", FakeRunner)
        client = TestClient(create_web_app(cfg, **overrides))
        client.__enter__()
        clients.append(client)
        return client

    yield _make
    for client in reversed(clients):
        client.__exit__(None, None, None)
    FakeRunner.instances.clear()


@pytest.fixture
def client(make_client, config):
    return make_client(config)
