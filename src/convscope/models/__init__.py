"""Models: a registry and factory (``create_model``, ``list_models``), layers and summaries."""

from convscope.models.registry import ModelEntry, create_model, get_entry, list_models, register_model
from convscope.models.summary import ModelSummary, count_params, summarize
from convscope.models.weights import load_weights

__all__ = [
    "ModelEntry", "ModelSummary", "count_params", "create_model", "get_entry", "list_models", "load_weights",
    "register_model", "summarize",
]
