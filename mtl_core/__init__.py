"""Multi-task sentence transformer: one shared all-MiniLM-L6-v2 pass, intent and sentiment heads."""
from .config import HeadConfig, ModelConfig
from .encoder import SentenceEncoder
from .model import MultiTaskModel, MultiTaskOutput

__all__ = ["HeadConfig", "ModelConfig", "MultiTaskModel", "MultiTaskOutput", "Predictor", "SentenceEncoder"]


def __getattr__(name: str):
    # Imported lazily so `python -m mtl_core.predict` does not import its own module twice.
    if name == "Predictor":
        from .predict import Predictor
        return Predictor
    raise AttributeError(f"module 'mtl_core' has no attribute {name!r}")
