"""Training and evaluation: `train` turns an image folder into checkpoints worth exporting; `validate` measures
the accuracy of a checkpoint or any exported file on an image folder through the runtime layer."""

from .trainer import TrainConfig, TrainResult, train
from .validator import ValResult, validate

__all__ = ["TrainConfig", "TrainResult", "ValResult", "train", "validate"]
