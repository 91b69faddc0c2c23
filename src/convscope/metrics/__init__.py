"""Metrics as plain functions from arrays to named results (numpy only, importable without torch)."""

from convscope.metrics.classification import (
    ClassificationReport,
    ClassScores,
    classification_report,
    confusion_matrix,
    report_from_confusion,
)
from convscope.metrics.pixel import (
    ClassPixelScores,
    PixelScores,
    SegmentationReport,
    all_background_accuracy,
    binarize,
    pixel_confusion,
    pixel_scores,
    segmentation_report,
    tune_threshold,
)

__all__ = [
    "ClassPixelScores",
    "ClassScores",
    "ClassificationReport",
    "PixelScores",
    "SegmentationReport",
    "all_background_accuracy",
    "binarize",
    "classification_report",
    "confusion_matrix",
    "pixel_confusion",
    "pixel_scores",
    "report_from_confusion",
    "segmentation_report",
    "tune_threshold",
]
