"""Conversion toolchain (export, INT8 quantization with calibration, accuracy/speed checks).

Not built yet: no issue asks for it so far. See convert/README.md.
"""
