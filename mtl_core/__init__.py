"""Multi-task sentence transformer: one shared all-MiniLM-L6-v2 pass, intent and sentiment heads."""
from .config import HeadConfig, ModelConfig
from .encoder import SentenceEncoder
from .model import MultiTaskModel, MultiTaskOutput
from .predictor import Predictor
from .records import Prediction

__all__ = ["HeadConfig", "ModelConfig", "MultiTaskModel", "MultiTaskOutput", "Prediction", "Predictor",
           "SentenceEncoder"]
