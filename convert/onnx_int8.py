"""ONNX INT8 with ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8 activations)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from convert.calibrate import Sample
from convert.errors import ConvertError


def _opset13(source: Path, out: Path) -> None:
    import onnx
    from onnx import version_converter

    model = onnx.load(str(source))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    if opset < 13:
        model = version_converter.convert_version(model, 13)
    onnx.save(model, str(out))


def quantize(source: Path, out: Path, calib: list[Sample], input_name: str, per_channel: bool = True) -> Path:
    """Calibrate with MinMax on ``calib`` and write a QDQ model to ``out``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if source.suffix.lower() != ".onnx":
        raise ConvertError(f"ONNX INT8 needs an ONNX source, not {source.name}")

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(calib)

        def get_next(self) -> dict[str, Any] | None:
            s = next(self._it, None)
            return None if s is None else {input_name: s.tensor}

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre, up = Path(tmp) / "pre.onnx", Path(tmp) / "opset13.onnx"
        _opset13(source, up)  # per-channel QDQ needs DequantizeLinear's axis (opset 13)
        quant_pre_process(str(up), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    return out
