"""``runtime:`` and ``models:``: how inference runs and where models come from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge.config.schema.base import FilePath, Strict

# ONNX Runtime execution provider names (builds differ in which they contain; edge checks at load)
ORT_PROVIDERS = (
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "NvTensorRTRTXExecutionProvider",
    "OpenVINOExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
    "QNNExecutionProvider",
    "XnnpackExecutionProvider",
    "ACLExecutionProvider",
    "ArmNNExecutionProvider",
    "DnnlExecutionProvider",
    "NnapiExecutionProvider",
    "CANNExecutionProvider",
    "VitisAIExecutionProvider",
    "WebGpuExecutionProvider",
)


class RuntimeConfig(Strict):
    """Inference runtime settings."""

    threads: int = Field(2, ge=1, le=64, description="inference threads per model")
    device: str = Field("CPU", description="OpenVINO device (CPU, GPU, NPU, MYRIAD on old releases)")
    precision: Literal["auto", "f32", "bf16", "f16"] = Field(
        "auto", description="OpenVINO inference precision; auto = the device's fastest (bf16 on recent CPUs)"
    )
    concurrency: int | None = Field(
        None, ge=1, le=64, description="camera frames processed at the same time (default: 2 per CPU core); fair shares"
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        min_length=1,
        description="ONNX Runtime execution providers, best first; unavailable ones are skipped with one warning, "
        "CPUExecutionProvider is always the last resort",
    )
    provider_options: dict[str, dict[str, str | int | float | bool]] = Field(
        default_factory=dict,
        description="per-provider options, e.g. TensorrtExecutionProvider: {trt_fp16_enable: true}",
    )

    @field_validator("providers")
    @classmethod
    def _providers(cls, v: list[str]) -> list[str]:
        for p in v:
            if p not in ORT_PROVIDERS:
                raise ValueError(f"unknown ONNX Runtime execution provider {p!r}; known: {', '.join(ORT_PROVIDERS)}")
        if len(set(v)) != len(v):
            raise ValueError("a provider is listed twice")
        return v

    @model_validator(mode="after")
    def _options_for_listed(self) -> RuntimeConfig:
        extra = sorted(set(self.provider_options) - set(self.providers))
        if extra:
            raise ValueError(f"provider_options for providers not in providers: {', '.join(extra)}")
        return self


class ModelsConfig(Strict):
    """Where models come from and where they are cached."""

    cache_dir: FilePath = Field(
        default_factory=lambda: Path(os.environ.get("EDGE_MODEL_CACHE", "~/.cache/edge/models")).expanduser()
    )
    mirror: str | None = Field(
        None, description="folder or URL laid out <name>/<files>; default $EDGE_MODEL_MIRROR, else upstream"
    )
