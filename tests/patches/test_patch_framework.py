"""Patches are version-gated, check their targets, and restore the exact originals."""

from coral_inference.patches import Patch, PatchSet
from tests.patches import fake_target
from tests.patches.fake_target import Target

MOD = "tests.patches.fake_target"


def make(**kwargs):
    replacements = {
        f"{MOD}:Target.method": lambda old, ctx: lambda self: "patched " + old(self),
        f"{MOD}:Target.static": lambda old, ctx: staticmethod(lambda: "patched static"),
        f"{MOD}:Target.klass": lambda old, ctx: classmethod(lambda cls: "patched class"),
        f"{MOD}:Target.inherited": lambda old, ctx: lambda self: "patched inherited",
        f"{MOD}:function": lambda old, ctx: lambda: "patched function",
    }
    return Patch(
        "demo", supported=kwargs.pop("supported", ">=1.0"), replacements=replacements, **kwargs
    )


def test_enable_then_disable_restores_the_exact_originals():
    originals = {
        name: Target.__dict__.get(name) for name in ("method", "static", "klass", "inherited")
    }
    original_function = fake_target.function
    patch = make()
    outcome = patch.enable()
    assert outcome.state == "enabled"
    t = Target()
    assert (t.method(), Target.static(), Target.klass(), t.inherited(), fake_target.function()) == (
        "patched original",
        "patched static",
        "patched class",
        "patched inherited",
        "patched function",
    )
    assert patch.disable().state == "off"
    for name, obj in originals.items():
        assert Target.__dict__.get(name) is obj  # same descriptor objects, inherited one gone again
    assert "inherited" not in Target.__dict__
    assert fake_target.function is original_function
    assert (t.method(), Target.static(), Target.klass(), t.inherited()) == (
        "original",
        "static",
        "class",
        "base",
    )


def test_enable_and_disable_are_idempotent():
    patch = make()
    patch.enable()
    once = Target.__dict__["method"]
    assert patch.enable().reason == "already enabled"
    assert Target.__dict__["method"] is once
    patch.disable()
    assert patch.disable().state == "off"
    assert Target().method() == "original"


def test_patch_is_refused_outside_its_inference_range(require_inference):
    outcome = make(supported="<1.0").enable()
    assert outcome.state == "refused"
    assert (
        f"inference {require_inference.version} is outside the patch's supported range <1.0"
        == outcome.reason
    )
    assert Target().method() == "original"


def test_patch_with_a_missing_target_is_refused_and_touches_nothing():
    patch = Patch(
        "gone",
        supported=">=1.0",
        replacements={
            f"{MOD}:Target.method": lambda old, ctx: lambda self: "patched",
            f"{MOD}:Target.vanished": lambda old, ctx: None,
        },
    )
    outcome = patch.enable()
    assert outcome.state == "refused" and "'vanished' does not exist" in outcome.reason
    assert Target().method() == "original"


def test_a_replacement_that_raises_rolls_back_what_was_applied():
    def boom(old, ctx):
        raise RuntimeError("no")

    patch = Patch(
        "half",
        supported=">=1.0",
        replacements={
            f"{MOD}:Target.method": lambda old, ctx: lambda self: "patched",
            f"{MOD}:Target.static": boom,
        },
    )
    outcome = patch.enable()
    assert outcome.state == "failed" and "RuntimeError: no" in outcome.reason
    assert Target().method() == "original" and not patch.is_enabled


def test_patch_set_records_config_switches_and_unknown_names():
    patches = PatchSet()
    patches.add(make())
    patches.apply({"demo": False, "nonexistent": True}, context=None)
    rows = {row["name"]: row for row in patches.describe()}
    assert rows["demo"]["state"] == "off" and "patches.demo: false" in rows["demo"]["reason"]
    assert (
        rows["nonexistent"]["state"] == "refused"
        and "no such patch is installed" in rows["nonexistent"]["reason"]
    )
    patches.apply({"demo": True}, context=None)
    assert patches.is_enabled("demo")
    patches.disable_all(None)
    assert Target().method() == "original"
