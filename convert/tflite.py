"""TFLite INT8 without TensorFlow: ai-edge-quantizer static quantization (int8 weights and
activations) of a TFLite FP32 model, calibrated on the same samples.

Blocked routes here (see docs/convert.md): ONNX -> TFLite needs onnx2tf/onnx-tf, which need
TensorFlow; PyTorch -> TFLite (litert-torch, formerly ai-edge-torch) needs torch, whose PyPI wheel
pulls ~3 GB of CUDA libraries (the CPU-only index is not reachable here) plus jax and transformers.
"""

from __future__ import annotations

from pathlib import Path

from convert.calibrate import Sample
from convert.errors import ConvertError


def quantize(source: Path, out: Path, calib: list[Sample]) -> Path:
    """FP32 .tflite -> INT8 .tflite (static, per-channel weights, int8 activations)."""
    if source.suffix.lower() != ".tflite":
        raise ConvertError(
            f"TFLite INT8 needs a TFLite FP32 source, not {source.name}: ONNX -> TFLite needs TensorFlow "
            "(onnx2tf) and PyTorch -> TFLite needs torch (litert-torch); neither is installable here"
        )
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError:
        raise ConvertError("TFLite INT8 needs ai-edge-quantizer: pip install 'edge-appliance[convert]'") from None
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(source))
    if any(d["dtype"].__name__ != "float32" for d in interp.get_input_details()):
        raise ConvertError(f"{source.name} is already quantized; TFLite INT8 starts from a float model")
    sigs = interp.get_signature_list()
    if not sigs:
        raise ConvertError(f"{source.name} has no signature; ai-edge-quantizer needs one to calibrate")
    key = next(iter(sigs))
    in_name = sigs[key]["inputs"][0]
    qt = quantizer.Quantizer(str(source))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    calib_result = qt.calibrate({key: [{in_name: s.tensor.astype("float32")} for s in calib]})
    out.parent.mkdir(parents=True, exist_ok=True)
    result = qt.quantize(calib_result)
    out.write_bytes(bytes(result.quantized_model))
    return out
