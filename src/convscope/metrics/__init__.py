"""Metrics as plain functions from arrays to named results (numpy only, importable without torch)."""

from convscope.metrics.classification import (
    ClassificationReport,
    ClassScores,
    classification_report,
    confusion_matrix,
    report_from_confusion,
)

__all__ = [
    "ClassScores",
    "ClassificationReport",
    "classification_report",
    "confusion_matrix",
    "report_from_confusion",
]
