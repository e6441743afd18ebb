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
        from ai_edge_quantizer import qtyping, quantizer, recipe
    except ImportError:
        raise ConvertError("TFLite INT8 needs ai-edge-quantizer: pip install 'edge-appliance[convert]'") from None
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(source))
    if any(d["dtype"].__name__ != "float32" for d in interp.get_input_details()):
        raise ConvertError(f"{source.name} is already quantized; TFLite INT8 starts from a float model")
    sigs = interp.get_signature_list()
    model_bytes = source.read_bytes() if sigs else with_signature(source.read_bytes())
    sigs = sigs or {"serving_default": {"inputs": ["input"], "outputs": ["output"]}}
    key = next(iter(sigs))
    in_name = sigs[key]["inputs"][0]
    qt = quantizer.Quantizer(bytearray(model_bytes))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    # keep float input/output: the appliance's preprocessing feeds float, its backends dequantize
    for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
        qt.update_quantization_recipe(regex=".*", operation_name=op,
                                      algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE)
    calib_result = qt.calibrate({key: [{in_name: s.tensor.astype("float32")} for s in calib]})
    out.parent.mkdir(parents=True, exist_ok=True)
    result = qt.quantize(calib_result)
    out.write_bytes(bytes(result.quantized_model))
    return out


def with_signature(model: bytes) -> bytes:
    """The model with a ``serving_default`` signature (first input/output), which the quantizer needs."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = fu.read_model_from_bytearray(bytearray(model))
    g = m.subgraphs[0]

    def tmap(name: str, idx: int) -> object:
        t = schema.TensorMapT()
        t.name, t.tensorIndex = name, int(idx)
        return t

    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = "serving_default", 0
    sig.inputs, sig.outputs = [tmap("input", g.inputs[0])], [tmap("output", g.outputs[0])]
    m.signatureDefs = [sig]
    return bytes(fu.convert_object_to_bytearray(m))


def dequantize(source: Path, out: Path) -> tuple[Path, tuple[float, float]]:
    """A uint8/int8 TFLite model with every weight dequantized to float32 and float activations: an
    FP32 TFLite source for the INT8 route (no TensorFlow here to export one). Returns the file and
    the input's (scale, zero_point), i.e. the float input is ``(q - zero_point) * scale``."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = fu.read_model(str(source))
    g = m.subgraphs[0]
    ints = {schema.TensorType.UINT8: np.uint8, schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32}
    q_in = g.tensors[g.inputs[0]].quantization
    in_q = (1.0, 0.0)
    if q_in is not None and q_in.scale is not None:
        in_q = (float(q_in.scale[0]), float(q_in.zeroPoint[0]))
    for t in g.tensors:
        q = t.quantization
        if q is None or q.scale is None or not len(q.scale) or t.type not in ints:
            continue
        scale, zp = np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.float32)
        buf = m.buffers[t.buffer]
        if buf.data is not None and len(buf.data):
            raw = np.frombuffer(bytes(bytearray(buf.data)), ints[t.type]).astype(np.float32).reshape(list(t.shape))
            shape = [1] * raw.ndim
            if len(scale) > 1:
                shape[q.quantizedDimension] = -1
            val = (raw - zp.reshape(shape if len(scale) > 1 else [])) * scale.reshape(shape if len(scale) > 1 else [])
            buf.data = np.frombuffer(val.astype(np.float32).tobytes(), np.uint8)
        t.quantization, t.type = None, schema.TensorType.FLOAT32
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(with_signature(bytes(fu.convert_object_to_bytearray(m))))
    return out, in_q


def dequantize_main(argv: list[str]) -> int:
    """``edge convert dequantize-tflite NAME``: FP32 TFLite + manifest from a quantized registry model."""
    import argparse

    from convert import deploy
    from edge.registry import ensure_model

    p = argparse.ArgumentParser(prog="edge convert dequantize-tflite", description=dequantize.__doc__)
    p.add_argument("model", help="a quantized TFLite registry model, e.g. mobilenet-v2-imagenet-quant")
    p.add_argument("--out", type=Path, default=Path("out/converted"))
    args = p.parse_args(argv)
    m, folder = ensure_model(args.model)
    if m.format != "tflite" or m.input is None:
        raise ConvertError(f"{args.model} is not a TFLite model with an input spec")
    name = f"{m.name}-fp32"
    entry = f"{name}.tflite"
    _, (scale, zp) = dequantize(folder / m.entry, args.out / name / entry)
    std = 1.0 / scale
    spec = {**m.input.model_dump(mode="json"), "dtype": "float32", "mean": [zp] * 3, "std": [std] * 3}
    path = deploy.write_manifest(
        m, name=name, fmt="tflite", backends=["litert"], folder=args.out / name, files=[entry], entry=entry,
        description=f"{m.name} with weights dequantized to float32 (an FP32 source for the TFLite INT8 route)",
        source_note=f"edge convert dequantize-tflite {m.name}", models_dir=args.out, source_folder=folder,
        overrides={"input": spec},
    )
    print(f"{args.out / name / entry}  manifest: {path}")
    return 0
