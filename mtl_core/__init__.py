"""Multi-task sentence transformer: one shared all-MiniLM-L6-v2 pass, intent and sentiment heads."""
from mtl_core.model.config import HeadConfig, ModelConfig
from mtl_core.model.encoder import SentenceEncoder
from mtl_core.model.model import MultiTaskModel, MultiTaskOutput
from mtl_core.serving.predictor import Predictor
from mtl_core.serving.records import Prediction

__all__ = ["HeadConfig", "ModelConfig", "MultiTaskModel", "MultiTaskOutput", "Prediction", "Predictor",
           "SentenceEncoder"]
