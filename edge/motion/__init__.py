"""Motion gating: decide per frame whether the detector needs to run."""

from edge.motion.gate import MotionGate

__all__ = ["MotionGate"]
