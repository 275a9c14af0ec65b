"""Evaluation and prediction: metrics, scoring protocols, whole/sliding inference, folder prediction.

`inference.predict` (images -> class ids) is not re-exported here: the name `predict` belongs to the
`syn2real.evaluate.predict` submodule (folder prediction).
"""

from syn2real.evaluate.evaluator import EvalResult, evaluate
from syn2real.evaluate.inference import infer_logits
from syn2real.evaluate.metrics import ConfusionMatrix
from syn2real.evaluate.predict import predict_folder
from syn2real.evaluate.protocols import PROTOCOLS, Protocol, get_protocol

__all__ = ["PROTOCOLS", "ConfusionMatrix", "EvalResult", "Protocol", "evaluate", "get_protocol", "infer_logits",
           "predict_folder"]
