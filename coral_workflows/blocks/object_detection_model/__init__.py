"""``coral/object_detection_model``: Coral model packages on the NPU or ONNX Runtime."""
