"""The only part of the package that imports torch and transformers."""

from wizardcoder_integrations.engine.engine import Engine, EngineInfo
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.results import FinishReason, GenerationResult, StreamDelta

__all__ = ["Engine", "EngineInfo", "FinishReason", "GenerationResult", "SamplingParams", "StreamDelta"]
