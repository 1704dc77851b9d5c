"""build_web_plugins: specs from factories, mappings or objects; every failure reported, none fatal."""

from __future__ import annotations

from fastapi import APIRouter

from coral_inference.plugins import WEB_PLUGINS_GROUP, PluginRecord
from coral_inference.webapp.plugins import WebPluginSpec, build_web_plugins


def record(name, obj=None, error=None):
    return PluginRecord(WEB_PLUGINS_GROUP, name, f"pkg:{name}", "pkg", "1.0", obj=obj, error=error)


def test_specs_come_from_objects_factories_and_mappings(tmp_path):
    router = APIRouter()
    built = build_web_plugins(
        [
            record("a", WebPluginSpec(name="a", routers=[router])),
            record("b", lambda context: WebPluginSpec(name="b", static_dir=tmp_path)),
            record("c", {"routers": [router], "prefix": "/extras"}),
        ],
        context=None,
    )
    assert [p.spec.mount_prefix for p in built] == ["/plugins/a", "/plugins/b", "/extras"]
    assert all(p.error is None for p in built)
    assert built[0].as_dict()["routes"] == 0 and built[1].as_dict()["static"] is True


def test_failures_are_captured_per_plugin(tmp_path):
    def explode(context):
        raise RuntimeError("boom")

    built = {
        p.name: p
        for p in build_web_plugins(
            [
                record("import_error", error="ImportError: no module"),
                record("factory", explode),
                record("wrong_type", 42),
                record("not_a_router", WebPluginSpec(name="x", routers=["/hello"])),
                record("missing_dir", WebPluginSpec(name="y", static_dir=tmp_path / "absent")),
                record("shadowing", WebPluginSpec(name="z", prefix="/api/v1")),
            ],
            context=None,
        )
    }
    assert built["import_error"].error == "ImportError: no module"
    assert "boom" in built["factory"].error
    assert "expected a WebPluginSpec" in built["wrong_type"].error
    assert "APIRouter" in built["not_a_router"].error
    assert "not a directory" in built["missing_dir"].error
    assert "shadow" in built["shadowing"].error
    assert all(p.spec is None and p.as_dict()["loaded"] is False for p in built.values())
