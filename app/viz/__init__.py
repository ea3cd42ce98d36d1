"""The denoising view: run figures, a per-step chart, the timeline and a legend."""
from .panel import DenoisePanel, StepChart

__all__ = ["DenoisePanel", "StepChart"]
