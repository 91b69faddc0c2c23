"""**Evaluate**: a predicted Labels layer against a ground-truth one: the matching table (precision, recall, F1,
accuracy at IoU 0.5 ... 0.9, :func:`convscope.metrics.matching`) and a layer colouring true positives, false
positives and misses at IoU 0.5."""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import Container, Label, PushButton, Table
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap

from convscope.errors import ConvscopeError
from convscope.metrics import matching
from convscope.napari._common import guarded, layer_picker

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
TP, FP, MISS = 1, 2, 3
COLORS = {TP: "limegreen", FP: "red", MISS: "gold"}
COLUMNS = ("IoU", "precision", "recall", "F1", "accuracy", "TP", "FP", "FN")


def outcome_map(truth: np.ndarray, pred: np.ndarray, thresh: float = 0.5) -> np.ndarray:
    """uint8 map: :data:`TP` on predicted objects matched at ``thresh``, :data:`FP` on other predicted objects,
    :data:`MISS` on true objects no prediction matched (where no predicted object covers them)."""
    m = matching(truth, pred, thresh, report_matches=True)
    pairs = [m.matched_pairs[i] for i in m.matched_tps]
    hit_pred = np.array(sorted({p for _t, p in pairs}) or [0])
    hit_true = np.array(sorted({t for t, _p in pairs}) or [0])
    out = np.zeros(truth.shape, np.uint8)
    out[(truth > 0) & ~np.isin(truth, hit_true)] = MISS
    out[pred > 0] = FP
    out[np.isin(pred, hit_pred) & (pred > 0)] = TP
    return out


def matching_rows(truth: np.ndarray, pred: np.ndarray) -> list[list[float | int]]:
    """One row per IoU threshold of :data:`THRESHOLDS` with the columns :data:`COLUMNS`."""
    rows = []
    for m in matching(truth, pred, THRESHOLDS):
        rows.append([m.thresh, round(m.precision, 3), round(m.recall, 3), round(m.f1, 3), round(m.accuracy, 3),
                     m.tp, m.fp, m.fn])
    return rows


class EvaluateWidget(Container):
    """Score a predicted Labels layer against ground truth."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.prediction = layer_picker(viewer, Labels, "prediction")
        self.truth = layer_picker(viewer, Labels, "ground truth")
        self.button = PushButton(text="Evaluate")
        self.table = Table(value={"data": [], "columns": list(COLUMNS)})
        self.status = Label(value="")
        self.extend([self.prediction, self.truth, self.button, self.table, self.status])
        self.button.changed.connect(lambda: guarded(self.evaluate))
        for layer in viewer.layers:  # a sample's "... ground truth" layer is the likely truth
            if isinstance(layer, Labels) and layer.name.endswith("ground truth"):
                self.truth.value = layer

    def evaluate(self) -> list[list[float | int]]:
        """Fill the table and add / update the ``TP / FP / miss`` layer; returns the table rows."""
        pred_layer, truth_layer = self.prediction.value, self.truth.value
        if pred_layer is None or truth_layer is None:
            raise ConvscopeError("choose a prediction and a ground-truth Labels layer")
        if pred_layer is truth_layer:
            raise ConvscopeError("prediction and ground truth are the same layer; pick two different ones")
        pred, truth = np.asarray(pred_layer.data), np.asarray(truth_layer.data)
        if pred.shape != truth.shape:
            raise ConvscopeError(f"prediction {pred.shape} and ground truth {truth.shape} differ in shape")
        rows = matching_rows(truth, pred)
        self.table.value = {"data": rows, "columns": list(COLUMNS)}
        colored = outcome_map(truth, pred)
        name = "TP / FP / miss"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        cmap = DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", **COLORS})
        self.viewer.add_labels(colored, name=name, colormap=cmap, opacity=0.7, scale=pred_layer.scale)
        r = rows[0]
        self.status.value = f"IoU 0.5: F1 {r[3]:.3f}, accuracy {r[4]:.3f} (green TP, red FP, gold missed)"
        return rows
