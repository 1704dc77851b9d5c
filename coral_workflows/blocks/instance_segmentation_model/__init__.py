"""``coral/instance_segmentation_model``: Coral segmentation packages on the NPU or ONNX Runtime."""
