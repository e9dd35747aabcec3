"""Models: TimeSformer, IA-RED² interpreters, token bookkeeping, weight loading, timm registry."""
from .layers import Attention, capture_cls_attention
from .timesformer import Block, TimeSformer
from .tokens import TokenGroups, TokenLayout, TokenState

__all__ = ["Attention", "Block", "TimeSformer", "TokenGroups", "TokenLayout", "TokenState",
           "capture_cls_attention"]
