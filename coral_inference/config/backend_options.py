"""Typed options of installed backends: ``backends.options.<name>`` checked when the config loads.

A backend declares its settings as a pydantic model on its factory (the class or
function its ``coral_inference.backends`` entry point names)::

    class MyOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        device: Literal["CPU", "GPU"] = "CPU"

    class MyBackend:
        name = "mine"
        options_model = MyOptions

Then ``backends.options.mine`` is validated with the rest of the configuration and
a bad value is reported with its dotted path (``backends.options.mine.device``),
exactly like the built-in sections ``backends.onnxruntime`` and ``backends.rknn``;
the registry hands the adapter a ``MyOptions`` instance. A backend without
``options_model`` receives its section as a plain mapping, unchecked. A name no
installed backend answers to is an error (a typo, or a package that is missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, create_model
from pydantic_core import PydanticCustomError

from coral_inference.plugins import BACKENDS_GROUP, discover

OPTIONS_ATTRIBUTE = "options_model"


def options_model_of(factory: object) -> type[BaseModel] | None:
    """The pydantic model a backend factory declares as ``options_model``, if any."""
    model = getattr(factory, OPTIONS_ATTRIBUTE, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def installed_backends() -> tuple[dict[str, type[BaseModel] | None], dict[str, str]]:
    """(backends that load -> their options model or None, backends that fail to load -> why)."""
    loaded: dict[str, type[BaseModel] | None] = {}
    failed: dict[str, str] = {}
    for record in discover(BACKENDS_GROUP):
        if record.loaded:
            loaded[record.name] = options_model_of(record.obj)
        else:
            failed[record.name] = record.error or "failed to load"
    return loaded, failed


def validate_backend_options(
    options: Mapping[str, Any], *, reserved: Iterable[str] = (), disabled: Iterable[str] = ()
) -> dict[str, Any]:
    """Check every ``backends.options.<name>`` against its backend's model.

    Returns the sections with typed ones completed by their defaults (as plain data).
    Raises ``pydantic.ValidationError`` located at ``("options", name, field...)``.
    ``reserved`` names have their own section (built-ins); ``disabled`` ones are not
    registered, so an unknown disabled name is tolerated.
    """
    if not options:
        return dict(options)
    loaded, failed = installed_backends()
    reserved, disabled = set(reserved), set(disabled)
    fields: dict[str, Any] = {}
    for name in options:
        model = loaded.get(name)
        if name in reserved:
            fields[name] = _refusal(
                f"{name} is a built-in backend: its settings live at backends.{name}, "
                f"not backends.options.{name}"
            )
        elif model is not None:
            fields[name] = (model | None, None)
        elif name in loaded or name in failed or name in disabled:
            # Untyped backend, or one that cannot load (the registry reports why): passed as is.
            fields[name] = (dict[str, Any] | None, None)
        else:
            known = ", ".join(sorted(loaded)) or "none"
            fields[name] = _refusal(
                f"no installed backend is named {name!r} (installed: {known}); install the "
                f"package that provides it, or remove backends.options.{name}"
            )
    by_name = create_model(  # type: ignore[call-overload]
        "BackendOptionsByName", __config__=ConfigDict(extra="forbid"), **fields
    )
    wrapper = create_model("BackendOptions", options=(by_name, ...))  # type: ignore[call-overload]
    validated: Any = wrapper.model_validate({"options": dict(options)})
    checked = validated.options
    result: dict[str, Any] = {}
    for name in options:
        value = getattr(checked, name)
        result[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return result


def _refusal(message: str) -> tuple[Any, None]:
    def refuse(_value: Any) -> Any:
        raise PydanticCustomError("backend_options", "{message}", {"message": message})

    return (Annotated[Any, AfterValidator(refuse)], None)
