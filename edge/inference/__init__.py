"""Inference: backends (LiteRT, OpenVINO, ONNX Runtime) and output heads, as plugins."""
