"""``coral/keypoint_detection_model``: Coral keypoint packages on the NPU or ONNX Runtime."""
