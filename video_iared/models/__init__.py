"""Models: TimeSformer, DeiT, IA-RED² interpreters, token bookkeeping, weight loading, timm registry."""
from .deit import DeiT
from .iared import GroupDecision, IARed, IARedOutput
from .interpreter import MultiHeadInterpreter, decide
from .layers import Attention, capture_cls_attention
from .registry import ModelInfo, get_model_info, list_variants, model_defaults
from .timesformer import Block, TimeSformer
from .tokens import SequencePlan, TokenLayout, TokenState
from .weights import LoadReport, WeightsError, load_weights

__all__ = ["Attention", "Block", "DeiT", "GroupDecision", "IARed", "IARedOutput", "LoadReport", "ModelInfo",
           "MultiHeadInterpreter", "TimeSformer", "SequencePlan", "TokenLayout", "TokenState", "WeightsError",
           "capture_cls_attention", "decide", "get_model_info", "list_variants", "load_weights",
           "model_defaults"]
