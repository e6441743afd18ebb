"""OpenVINO IR outputs: FP32, FP16 (weights compressed) and INT8 with NNCF post-training
quantization (``nncf.quantize``), or ``nncf.quantize_with_accuracy_control`` when a validation set
and a metric are given. OpenVINO reads ONNX, IR and TFLite sources directly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from convert.calibrate import Sample, image_height
from convert.errors import ConvertError


def _read(path: Path) -> Any:
    import openvino as ov

    try:
        # convert_model (not Core.read_model) runs the offline optimizations: BatchNorm folded into
        # convolutions, Sigmoid*Mul fused into Swish; NNCF otherwise puts int8 quantizers inside
        # every SiLU (208 of them in YOLOX-nano) and the detections fall apart (mAP 27%).
        # IR files were optimized when they were made (and convert_model rejects older IR versions).
        return ov.Core().read_model(str(path)) if path.suffix == ".xml" else ov.convert_model(str(path))
    except Exception as err:  # noqa: BLE001 - the runtime's own error types
        raise ConvertError(f"OpenVINO cannot read {path}: {str(err).strip().splitlines()[0][:200]}") from None


# ops that end a network's "body": the float tail after them (decode, concat of box/score
# branches, softmax) stays in float, since one int8 scale over e.g. box offsets (tens) and sigmoid
# scores (0..1) concatenated together wipes out the scores
_BODY_OPS = {"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"}


def output_tail(model: Any) -> list[str]:
    """Friendly names of the ops between the last convolution/matmul and the outputs."""
    seen: set[str] = set()
    stack = [r.input_value(0).get_node() for r in model.get_results()]
    while stack:
        node = stack.pop()
        name = node.get_friendly_name()
        if name in seen or node.get_type_name() in _BODY_OPS | {"Parameter", "Constant"}:
            continue
        seen.add(name)
        stack.extend(v.get_node() for v in node.input_values())
    return sorted(seen)


def stem(model: Any, max_stride: int) -> list[str]:
    """Friendly names of the ops whose output is at least 1/``max_stride`` of the input's height:
    the network's full-resolution stem (YOLOX-nano, 4: Focus + the first CSP stage, 36 ops)."""
    if max_stride <= 0:
        return []
    shape = model.inputs[0].get_partial_shape()
    dims = [] if shape.rank.is_dynamic else [d.get_length() if d.is_static else -1 for d in shape]
    height = image_height(dims)
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Parameter", "Constant", "Result"):
            continue
        out = op.get_output_partial_shape(0)
        # ops run in NCHW inside OpenVINO, also for NHWC sources (a Transpose follows the input)
        if out.rank.is_static and out.rank.get_length() == 4 and out[2].is_static:
            if out[2].get_length() * max_stride >= height:
                names.append(op.get_friendly_name())
    return names


def save_ir(source: Path, out_xml: Path, *, fp16: bool) -> Path:
    """The source as IR, weights in FP16 (``fp16``) or FP32."""
    import openvino as ov

    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(_read(source), str(out_xml), compress_to_fp16=fp16)
    return out_xml


def quantize(
    source: Path,
    out_xml: Path,
    calib: list[Sample],
    *,
    preset: str = "mixed",
    validation: list[Sample] | None = None,
    validation_fn: Callable[[Any, list[np.ndarray]], float] | None = None,
    max_drop: float = 0.01,
    keep_tail_float: bool = True,
    ignore: list[str] | None = None,
    max_iterations: int = 12,
    float_stem: int = 0,
) -> Path:
    """INT8 IR via NNCF. With ``validation`` + ``validation_fn`` (metric in 0..1, higher is better),
    layers are reverted to float until the metric drops by at most ``max_drop`` (absolute), for at
    most ``max_iterations`` rounds. ``float_stem`` > 0 keeps the ops at output stride <= it in float
    (see ``stem``): per-layer sensitivity puts most of YOLOX-nano's int8 error there."""
    import nncf
    import openvino as ov

    model = _read(source)
    calib_ds = nncf.Dataset([s.tensor for s in calib])
    names = set(ignore or []) | set(output_tail(model) if keep_tail_float else []) | set(stem(model, float_stem))
    kwargs: dict[str, Any] = {
        "subset_size": len(calib),
        "preset": nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
    }
    if names:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=sorted(names), validate=False)
    if validation and validation_fn is not None:
        val_ds = nncf.Dataset([s.tensor for s in validation])
        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

        # bounded: each iteration reverts the top-ranked layers and re-validates; ranking every
        # quantized op on a subset keeps one run to minutes (YOLOX-nano: 122 ops, ~7 min here)
        restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=max_iterations,
                                                      ranking_subset_size=min(60, len(validation)))
        q = nncf.quantize_with_accuracy_control(
            model, calib_ds, val_ds, validation_fn, max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
            advanced_accuracy_restorer_parameters=restorer, **kwargs,
        )
    else:
        q = nncf.quantize(model, calib_ds, **kwargs)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(out_xml))  # remaining float weights stored as FP16 ("FP16-INT8" in OMZ terms)
    return out_xml
