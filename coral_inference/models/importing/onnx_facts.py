"""What an ONNX file says about itself: input, outputs and the metadata its exporter wrote.

Read with onnxruntime (a Coral dependency), so importing needs no ``onnx`` package.
Ultralytics writes Python reprs (``names``, ``imgsz``, ``args``) into the metadata;
``coral_inference.models.export_metadata.literal`` parses them (never ``eval``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coral_inference.models.importing.errors import ModelImportError

Shape = list[int | str | None]


@dataclass(frozen=True)
class OnnxFacts:
    path: Path
    input_name: str
    input_shape: Shape
    input_type: str  # onnxruntime type string, e.g. "tensor(float)"
    output_names: list[str]
    output_shapes: list[Shape]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def static_outputs(self) -> list[list[int]] | None:
        """Output shapes when every dimension is a number (None when one is symbolic)."""
        shapes = []
        for shape in self.output_shapes:
            if not all(isinstance(d, int) for d in shape):
                return None
            shapes.append([int(d) for d in shape if isinstance(d, int)])
        return shapes

    @property
    def input_hw(self) -> tuple[int, int] | None:
        """(height, width) of an NCHW or NHWC image input with static sizes."""
        shape = self.input_shape
        if len(shape) != 4:
            return None
        if shape[1] == 3 and isinstance(shape[2], int) and isinstance(shape[3], int):
            return shape[2], shape[3]
        if shape[3] == 3 and isinstance(shape[1], int) and isinstance(shape[2], int):
            return shape[1], shape[2]
        return None

    @property
    def input_layout(self) -> str:
        return (
            "NHWC"
            if len(self.input_shape) == 4 and self.input_shape[3] == 3 and self.input_shape[1] != 3
            else "NCHW"
        )

    @property
    def input_dtype(self) -> str:
        return {"tensor(uint8)": "uint8", "tensor(float16)": "float16"}.get(
            self.input_type, "float32"
        )

    @property
    def is_ultralytics(self) -> bool:
        return "Ultralytics" in self.metadata.get("author", "") or {
            "names",
            "imgsz",
            "task",
        } <= set(self.metadata)


def read_onnx(path: Path) -> OnnxFacts:
    """Open ``path`` with onnxruntime on CPU; a file it cannot parse is a ``ModelImportError``."""
    # heavy: onnxruntime's shared libraries (~0.5 s), only to read a model file
    import onnxruntime

    if not path.is_file():
        raise ModelImportError(f"{path}: no such file")
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime's Fail / InvalidProtobuf / InvalidGraph
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelImportError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {first}); the file is "
            "corrupt or "
            "truncated, or not ONNX at all: export it again (e.g. yolo export model=best.pt "
            "format=onnx)"
        ) from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelImportError(
            f"{path}: the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
            "Coral runs "
            f"image models with exactly one image input"
        )
    meta = session.get_modelmeta()
    return OnnxFacts(
        path=path,
        input_name=inputs[0].name,
        input_shape=list(inputs[0].shape),
        input_type=inputs[0].type,
        output_names=[o.name for o in session.get_outputs()],
        output_shapes=[list(o.shape) for o in session.get_outputs()],
        metadata=dict(meta.custom_metadata_map or {}),
    )
