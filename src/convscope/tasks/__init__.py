"""Tasks: what differs between classification and segmentation (targets, head size, loss, decoding)."""

from convscope.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask"]
