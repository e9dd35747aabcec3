"""video_iared: IA-RED² interpretability-aware token dropping for video transformers (TimeSformer)."""
from . import models  # noqa: F401  registers the TimeSformer variants in timm's model registry
