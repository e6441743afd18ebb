"""Conversion toolchain: export and quantize models for OpenVINO / ONNX Runtime / LiteRT, calibrated
on real frames preprocessed exactly as the appliance does, and prove each result (``edge convert``).

Heavy dependencies (NNCF, scikit-learn, ai-edge-quantizer) come with the ``[convert]`` extra and are
imported only inside the modules that need them.
"""
