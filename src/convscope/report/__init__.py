"""Reporting: learning curves, confusion matrices, image galleries, segmentation error overlays and the
self-contained HTML report.

Figures are drawn on :class:`matplotlib.figure.Figure` objects (Agg, no pyplot state) and saved as PNG.
"""

from convscope.report.curves import history_metrics, learning_curves_figure, plot_learning_curves
from convscope.report.figures import (
    overlay_errors,
    plot_confusion_matrix,
    plot_examples,
    plot_overlays,
    scale_for_display,
)
from convscope.report.html import render_report, write_report

__all__ = [
    "history_metrics",
    "learning_curves_figure",
    "overlay_errors",
    "plot_confusion_matrix",
    "plot_examples",
    "plot_learning_curves",
    "plot_overlays",
    "render_report",
    "scale_for_display",
    "write_report",
]
