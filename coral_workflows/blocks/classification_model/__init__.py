"""``coral/classification_model``: Coral classification packages on the NPU or ONNX Runtime."""
