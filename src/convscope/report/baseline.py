"""The report's baseline section: the network beside a classical baseline, and "Do I need deep learning?".

:func:`baseline_section` takes the network's and the baseline's split metrics (the ``metrics.json`` layout, the
baseline's from :func:`convscope.evaluation.baselines.score_baseline`) and returns the rows of the table and the
one-sentence verdict; the HTML template only draws them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Gains (network minus baseline, on the headline metric) below which the verdict says deep learning is not needed,
#: and above which it clearly pays off.
SMALL_GAIN = 0.02
CLEAR_GAIN = 0.10


@dataclass(frozen=True)
class BaselineSection:
    """What the report shows.

    Attributes
    ----------
    metric : str
        The headline metric's name (``Dice`` or ``F1 at IoU 0.5``).
    rows : tuple of dict
        ``{"method", "metric", "iou"|"accuracy", ...}`` for the network and the baseline, values as floats.
    gain : float
        Network minus baseline on ``metric``.
    sentence : str
        The verdict, one sentence.
    """

    metric: str
    rows: tuple[dict[str, Any], ...]
    gain: float
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "rows": [dict(r) for r in self.rows], "gain": self.gain,
                "sentence": self.sentence}


def _headline(metrics: Mapping[str, Any]) -> tuple[str, float, dict[str, float]]:
    if "matching" in metrics:
        at = metrics["matching"]["0.5"]
        return "F1 at IoU 0.5", float(at["f1"]), {"accuracy@0.5": float(at["accuracy"]),
                                                   "PQ@0.5": float(at["panoptic_quality"])}
    if "dice" in metrics:
        return "Dice", float(metrics["dice"]), {"IoU": float(metrics["iou"]),
                                               "pixel accuracy": float(metrics["pixel_accuracy"])}
    raise ValueError("metrics have neither 'matching' (instances) nor 'dice' (semantic)")


def baseline_section(network: Mapping[str, Any], baseline: Mapping[str, Any], *,
                     network_name: str = "network") -> BaselineSection:
    """The table rows and the verdict sentence for one split.

    Parameters
    ----------
    network, baseline : mapping
        Split entries of ``metrics.json`` (``{"dice", "iou", ...}`` or ``{"matching": {"0.5": ...}, ...}``),
        on the same images; the baseline's has ``"baseline"`` naming the method.
    network_name : str
        The first row's label (the model's name).

    Returns
    -------
    BaselineSection

    Raises
    ------
    ValueError
        The two dicts are not of the same kind, or were scored on different numbers of images.
    """
    metric, net_value, net_more = _headline(network)
    base_metric, base_value, base_more = _headline(baseline)
    if metric != base_metric:
        raise ValueError(f"network scored with {metric} but the baseline with {base_metric}")
    n_net, n_base = network.get("n_images"), baseline.get("n_images")
    if n_net is not None and n_base is not None and n_net != n_base:
        raise ValueError(f"network scored on {n_net} images but the baseline on {n_base}")
    method = str(baseline.get("baseline", "classical baseline"))
    rows = ({"method": network_name, metric: net_value, **net_more},
            {"method": method, metric: base_value, **base_more})
    gain = net_value - base_value
    images = f" on the same {n_net} test images" if n_net else " on the same test images"
    numbers = f"{metric} {net_value:.3f} against {base_value:.3f} for {method}{images}"
    if gain < -SMALL_GAIN:
        sentence = (f"No: the network is below the classical baseline ({numbers}); check the training before "
                    "trusting it, or use the baseline.")
    elif gain < SMALL_GAIN:
        sentence = (f"Probably not: the network is level with the classical baseline ({numbers}); the simpler "
                    "method does as well on these images.")
    elif gain < CLEAR_GAIN:
        sentence = (f"Somewhat: the network is {gain:.3f} above the classical baseline ({numbers}); weigh the gain "
                    "against the cost of training and labelling.")
    else:
        sentence = f"Yes: the network is {gain:.3f} above the classical baseline ({numbers})."
    return BaselineSection(metric, rows, gain, sentence)


def report_baseline(metrics: Mapping[str, Any], *, network_name: str = "network") -> BaselineSection | None:
    """The section for a run's ``metrics.json``: its test split beside ``metrics["baseline"]["test"]``.

    Returns None when the run has no baseline (classification, more than two classes, no test split).
    """
    stored = metrics.get("baseline")
    test = metrics.get("test")
    if not isinstance(stored, Mapping) or not isinstance(stored.get("test"), Mapping) or not isinstance(test, Mapping):
        return None
    return baseline_section(test, stored["test"], network_name=network_name)
