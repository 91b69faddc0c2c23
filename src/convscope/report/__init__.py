"""Reporting: learning curves, confusion matrices, image galleries, segmentation error overlays, instance matching
curves and outline overlays, and the self-contained HTML report.

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
from convscope.report.instances import outline_overlay, plot_matching_curves

__all__ = [
    "history_metrics",
    "learning_curves_figure",
    "outline_overlay",
    "overlay_errors",
    "plot_confusion_matrix",
    "plot_examples",
    "plot_learning_curves",
    "plot_matching_curves",
    "plot_overlays",
    "render_report",
    "scale_for_display",
    "write_report",
]
