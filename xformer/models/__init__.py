"""The PyTorch reference models and their registry. No export code lives here."""

from .attention import ATTENTION_TYPES, CrossFeatureAttention, LinearCrossFeatureAttention, MultiHeadSelfAttention
from .blocks import InvertedResidual, TransformerLayer, XFormerBlock
from .mobilenetv2 import MobileNetV2
from .registry import ModelConfig, create_model, get_model_entry, imagenet_labels, list_models
from .vit import VisionTransformer
from .xformer import XFormer

__all__ = ["ATTENTION_TYPES", "CrossFeatureAttention", "InvertedResidual", "LinearCrossFeatureAttention",
           "MobileNetV2", "ModelConfig", "MultiHeadSelfAttention", "TransformerLayer", "VisionTransformer",
           "XFormer", "XFormerBlock", "create_model", "get_model_entry", "imagenet_labels", "list_models"]
