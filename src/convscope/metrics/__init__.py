"""Metrics as plain functions from arrays to named results (numpy/scipy only, importable without torch)."""

from convscope.metrics.classification import (
    ClassificationReport,
    ClassScores,
    classification_report,
    confusion_matrix,
    report_from_confusion,
)
from convscope.metrics.matching import (
    DEFAULT_THRESHOLDS,
    Matching,
    evaluate_label_items,
    evaluate_label_pairs,
    matching,
    matching_dataset,
    matching_table,
    tabulate_matchings,
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
    "DEFAULT_THRESHOLDS",
    "ClassPixelScores",
    "ClassScores",
    "ClassificationReport",
    "Matching",
    "PixelScores",
    "SegmentationReport",
    "all_background_accuracy",
    "binarize",
    "classification_report",
    "confusion_matrix",
    "evaluate_label_items",
    "evaluate_label_pairs",
    "matching",
    "matching_dataset",
    "matching_table",
    "pixel_confusion",
    "pixel_scores",
    "report_from_confusion",
    "segmentation_report",
    "tabulate_matchings",
    "tune_threshold",
]
