"""TFLite INT8 without TensorFlow: ai-edge-quantizer static quantization (int8 weights and
activations) of a TFLite FP32 model, calibrated on the same samples.

The FP32 TFLite comes from the source itself (a TFLite model) or from litert-torch
(``convert.torch_export``: PyTorch sources, and ONNX through onnx2torch). Model input/output stay
float by default (the appliance's preprocessing feeds float); ``io="int8"`` keeps the quantizer's
int8 input/output, ``io="uint8"`` adds a QUANTIZE op at each end so the model takes and gives uint8
(raw 0..255 pixels when the input's scale comes out as 1, zero point 0). The ops after the last
convolution (the "float tail", :func:`output_tail`) stay float, so an output fed by it stays float.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from convert.calibrate import Sample, image_height
from convert.errors import ConvertError

IO_TYPES = ("float", "int8", "uint8")


ACTIVATIONS = ("int8", "int16", "float")


def quantize(
    source: Path, out: Path, calib: list[Sample], io: str = "float", activations: str = "int8", float_stem: int = 0
) -> Path:
    """FP32 .tflite -> INT8 .tflite (static, per-channel int8 weights); ``activations`` int8 (full
    integer), int16 (16x8: slower reference kernels, far more accurate for SiLU nets) or float
    (weights only); model input/output ``io``: float, int8 or uint8 (int8 activations only).
    ``float_stem`` > 0 keeps the ops at output stride <= it in float (see ``stem``)."""
    if io != "float" and activations != "int8":
        raise ConvertError(f"--io {io} needs int8 activations (the model's ends are then int8)")
    if source.suffix.lower() != ".tflite":
        raise ConvertError(f"TFLite INT8 needs a TFLite FP32 source, not {source.name}")
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
    qt.load_quantization_recipe({"int8": recipe.static_wi8_ai8, "int16": recipe.static_wi8_ai16,
                                 "float": recipe.weight_only_wi8_afp32}[activations]())
    if io == "float":
        # keep float input/output: the appliance's preprocessing feeds float, its backends dequantize
        for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            qt.update_quantization_recipe(regex=".*", operation_name=op,
                                          algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE)
    tail = output_tail(model_bytes) + stem(model_bytes, float_stem)
    if tail:
        # the float tail after the last conv/matmul (sigmoids, concat of box offsets with scores,
        # reshapes): one int8 scale over offsets (tens) and scores (0..1) wipes out the scores.
        # The quantizer matches an op's "scope": its output tensor names, each followed by ";"
        qt.update_quantization_recipe(regex="|".join(f"^{re.escape(n)};$" for n in tail),
                                      operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                      algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE)
    calib_result = qt.calibrate({key: [{in_name: s.tensor.astype("float32")} for s in calib]})
    out.parent.mkdir(parents=True, exist_ok=True)
    model = bytes(qt.quantize(calib_result).quantized_model)
    out.write_bytes(with_uint8_io(model) if io == "uint8" else model)
    return out


_BODY_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL")


def output_tail(model: bytes) -> list[str]:
    """Output tensor names of the ops between the last conv/matmul and the model's outputs."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = fu.read_model_from_bytearray(bytearray(model))
    g = m.subgraphs[0]
    kinds = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    producer = {t: i for i, op in enumerate(g.operators) for t in op.outputs}
    seen: set[int] = set()
    names: list[str] = []
    stack = list(g.outputs)
    while stack:
        i = producer.get(stack.pop(), -1)
        if i < 0 or i in seen:
            continue
        seen.add(i)
        op = g.operators[i]
        if kinds.get(m.operatorCodes[op.opcodeIndex].builtinCode) in _BODY_OPS:
            continue
        names.append((g.tensors[op.outputs[0]].name or b"").decode())
        stack.extend(op.inputs)
    return [n for n in names if n]


def stem(model: bytes, max_stride: int) -> list[str]:
    """Output tensor names of the ops whose output is at least 1/``max_stride`` of the input's
    height: the full-resolution stem, kept float by ``--float-stem`` as on OpenVINO."""
    if max_stride <= 0:
        return []
    from ai_edge_litert.tools import flatbuffer_utils as fu

    g = fu.read_model_from_bytearray(bytearray(model)).subgraphs[0]
    height = image_height([int(d) for d in g.tensors[g.inputs[0]].shape])
    names = []
    for op in g.operators:
        out = g.tensors[op.outputs[0]]
        # ops run NHWC inside TFLite (an NCHW source gets a transpose after its input)
        if out.shape is not None and len(out.shape) == 4 and out.shape[1] * max_stride >= height:
            names.append((out.name or b"").decode())
    return [n for n in names if n]


def with_uint8_io(model: bytes) -> bytes:
    """An int8-I/O model with uint8 input and output: a QUANTIZE op (uint8 -> int8, zero point
    +128, same scale) before the first input and one (int8 -> uint8) after each output, as
    TensorFlow's converter does for ``inference_input_type=tf.uint8``."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = fu.read_model_from_bytearray(bytearray(model))
    g = m.subgraphs[0]
    code = next((i for i, c in enumerate(m.operatorCodes) if c.builtinCode == schema.BuiltinOperator.QUANTIZE), None)
    if code is None:
        oc = schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = schema.BuiltinOperator.QUANTIZE, 114, 2
        m.operatorCodes.append(oc)
        code = len(m.operatorCodes) - 1

    def int8(idx: int) -> bool:
        q = g.tensors[idx].quantization
        return g.tensors[idx].type == schema.TensorType.INT8 and q is not None and q.scale is not None

    def twin(idx: int, suffix: str) -> int:
        """A uint8 copy of int8 tensor ``idx`` (same scale, zero point + 128); returns its index."""
        t = g.tensors[idx]
        u = schema.TensorT()
        u.name, u.shape, u.type = (t.name or b"") + suffix.encode(), list(t.shape), schema.TensorType.UINT8
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = list(t.quantization.scale), [int(z) + 128 for z in t.quantization.zeroPoint]
        u.quantization = q
        buf = schema.BufferT()
        m.buffers.append(buf)
        u.buffer = len(m.buffers) - 1
        g.tensors.append(u)
        return len(g.tensors) - 1

    def op(src: int, dst: int) -> Any:
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code, [src], [dst]
        return o

    # outputs left float (a float tail) stay float
    new_in = [twin(i, "_uint8") if int8(i) else i for i in g.inputs]
    new_out = [twin(i, "_uint8") if int8(i) else i for i in g.outputs]
    before = [op(u, i) for u, i in zip(new_in, g.inputs) if u != i]
    g.operators = before + list(g.operators) + [op(i, u) for i, u in zip(g.outputs, new_out) if u != i]
    remap = dict(zip(list(g.inputs) + list(g.outputs), new_in + new_out))
    g.inputs, g.outputs = new_in, new_out
    for sig in m.signatureDefs or []:
        for tm in list(sig.inputs or []) + list(sig.outputs or []):
            tm.tensorIndex = remap.get(tm.tensorIndex, tm.tensorIndex)
    return bytes(fu.convert_object_to_bytearray(m))


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


def with_classifier_head(source: Path, out: Path, coef: Any, bias: Any) -> Path:
    """A float TFLite backbone cut at its last global pool, with ``softmax(x @ coef.T + bias)``
    (FULLY_CONNECTED + SOFTMAX) as its only output: a trained head grafted on for the INT8 route."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu

    op_enum = schema.BuiltinOperator
    m = fu.read_model(str(source))
    g = m.subgraphs[0]
    code_of = [c.builtinCode for c in m.operatorCodes]
    pools = [i for i, op in enumerate(g.operators)
             if code_of[op.opcodeIndex] in (op_enum.AVERAGE_POOL_2D, op_enum.MEAN)]
    if not pools:
        raise ConvertError(f"{source.name}: no global pooling op to cut the backbone at")
    g.operators = g.operators[: pools[-1] + 1]  # ops are stored in execution order
    feat = g.operators[-1].outputs[0]
    # drop the old head's tensors (the quantizer reads every tensor) and empty their buffers
    kept = {t for op in g.operators for t in (*op.inputs, *op.outputs) if t >= 0} | set(g.inputs)
    used = sorted(kept)
    for i, t in enumerate(g.tensors):
        if i not in kept and t.buffer > 0:
            m.buffers[t.buffer].data = None
    new_index = {old: new for new, old in enumerate(used)}
    g.tensors = [g.tensors[i] for i in used]
    for op in g.operators:
        op.inputs = [new_index[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [new_index[t] for t in op.outputs]
    g.inputs = [new_index[t] for t in g.inputs]
    feat = new_index[feat]

    def code(builtin: int) -> int:
        if builtin not in code_of:
            oc = schema.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = builtin, builtin, 1
            m.operatorCodes.append(oc)
            code_of.append(builtin)
        return code_of.index(builtin)

    def tensor(name: str, shape: list[int], data: Any = None) -> int:
        t = schema.TensorT()
        t.name, t.shape, t.type = name.encode(), shape, schema.TensorType.FLOAT32
        buf = schema.BufferT()
        if data is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(data, np.float32).tobytes(), np.uint8)
        m.buffers.append(buf)
        t.buffer = len(m.buffers) - 1
        g.tensors.append(t)
        return len(g.tensors) - 1

    n = int(coef.shape[0])
    w, b = tensor("head/weights", list(coef.shape), coef), tensor("head/bias", [n], bias)
    logits, probs = tensor("head/logits", [1, n]), tensor("probs", [1, n])
    fc = schema.OperatorT()
    fc.opcodeIndex, fc.inputs, fc.outputs = code(op_enum.FULLY_CONNECTED), [feat, w, b], [logits]
    fc.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    fc.builtinOptions = schema.FullyConnectedOptionsT()
    sm = schema.OperatorT()
    sm.opcodeIndex, sm.inputs, sm.outputs = code(op_enum.SOFTMAX), [logits], [probs]
    sm.builtinOptionsType, sm.builtinOptions = schema.BuiltinOptions.SoftmaxOptions, schema.SoftmaxOptionsT()
    sm.builtinOptions.beta = 1.0
    g.operators += [fc, sm]
    g.outputs = [probs]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(with_signature(bytes(fu.convert_object_to_bytearray(m))))
    return out


def dequantize_main(argv: list[str]) -> int:
    """``edge convert dequantize-tflite NAME``: FP32 TFLite + manifest from a quantized registry model."""
    import argparse

    from convert import deploy
    from edge.registry import ensure_model

    p = argparse.ArgumentParser(
        prog="edge convert dequantize-tflite",
        description="A float32 TFLite copy of a quantized TFLite registry model, with its manifest: an FP32 "
        "source for the INT8 route (no TensorFlow here to export one).",
    )
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
