"""Read a training history and say, in plain words, whether the model overfits.

Plain numpy, importable without torch. The input is the per-epoch history the trainer writes to
``history.csv``: a list of mappings with at least ``epoch`` (1-based), ``train_loss`` and ``val_loss``, and
optionally ``train_accuracy`` / ``val_accuracy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "MIN_EPOCHS",
    "VERDICT_IMPROVING",
    "VERDICT_NONE",
    "VERDICT_OVERFITTING",
    "VERDICT_TOO_FEW",
    "VERDICT_UNDERFITTING",
    "OverfittingDiagnosis",
    "diagnose_overfitting",
]

VERDICT_OVERFITTING = "overfitting"
VERDICT_NONE = "no overfitting detected"
VERDICT_TOO_FEW = "too few epochs to tell"
VERDICT_UNDERFITTING = "underfitting"
VERDICT_IMPROVING = "still improving"

#: Fewer epochs than this give the verdict "too few epochs to tell".
MIN_EPOCHS = 3
#: Training loss "still falls fast" when its last epoch lowered it by at least this fraction.
FAST_FALL = 0.05
#: Underfitting: the best epoch's training loss is still above this fraction of the first epoch's ...
UNDERFIT_LOSS_FRACTION = 0.5
#: ... and, when the history has accuracies, the training accuracy at the best epoch is below this.
UNDERFIT_ACCURACY = 0.9


@dataclass(frozen=True)
class OverfittingDiagnosis:
    """What the learning curves say about over- and underfitting (see :func:`diagnose_overfitting`).

    Attributes
    ----------
    verdict : str
        ``"overfitting"``, ``"underfitting"``, ``"still improving"``, ``"no overfitting detected"`` or
        ``"too few epochs to tell"``.
    overfitting : bool
        ``verdict == "overfitting"``.
    onset_epoch : int or None
        The first epoch of the lasting rise of validation loss, when overfitting.
    best_epoch : int
        The epoch with the lowest validation loss (the first one on ties): the checkpoint to use.
    best_val_loss, train_loss_at_best : float
        Validation and training loss at ``best_epoch``.
    generalisation_gap : float
        ``val_loss - train_loss`` at ``best_epoch``.
    accuracy_gap : float or None
        ``train_accuracy - val_accuracy`` at ``best_epoch``; None when the history has no accuracies.
    final_gap : float
        ``val_loss - train_loss`` at the last epoch.
    n_epochs : int
        Number of epochs in the history.
    advice : str
        What the verdict means and what to do, in plain words.
    patience, tolerance : int, float
        The settings the diagnosis used.
    """

    verdict: str
    overfitting: bool
    onset_epoch: int | None
    best_epoch: int
    best_val_loss: float
    train_loss_at_best: float
    generalisation_gap: float
    accuracy_gap: float | None
    final_gap: float
    n_epochs: int
    advice: str
    patience: int
    tolerance: float

    @property
    def summary(self) -> str:
        """One line for the terminal."""
        best = f"best epoch {self.best_epoch} of {self.n_epochs} (val loss {self.best_val_loss:.4g})"
        if self.verdict == VERDICT_OVERFITTING:
            return f"Overfitting: validation loss rose from epoch {self.onset_epoch} on; {best}"
        if self.verdict == VERDICT_UNDERFITTING:
            return f"Underfitting: the model fits even its training images poorly; {best}"
        if self.verdict == VERDICT_IMPROVING:
            return f"Still improving at the last epoch: train longer; {best}"
        if self.verdict == VERDICT_TOO_FEW:
            return f"Too few epochs to tell over- or underfitting; {best}"
        return f"No overfitting detected; {best}, gap val-train loss {self.generalisation_gap:+.3g}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, plus ``summary``; non-finite floats (a diverged loss) become None."""
        fields = asdict(self)
        fields = {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in fields.items()}
        return {**fields, "summary": self.summary}


def _column(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """The values of ``key`` over epochs as float64, NaN where absent or None."""
    values = [row.get(key) for row in history]
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _find_onset(
    val: np.ndarray, train: np.ndarray, best: int, threshold: float, patience: int, *, need_train_fall: bool
) -> int | None:
    """Index of the first epoch after ``best`` opening ``patience`` epochs with val loss above ``threshold``.

    With ``need_train_fall``, training loss must also be below its value at ``best`` in all those epochs.
    """
    for start in range(best + 1, len(val) - patience + 1):
        window = slice(start, start + patience)
        if not np.all(val[window] > threshold):
            continue
        if need_train_fall and not np.all(train[window] < train[best]):
            continue
        return start
    return None


def _falls_fast(train: np.ndarray) -> bool:
    """True when the last epoch lowered training loss by at least :data:`FAST_FALL` (relative)."""
    before, last = train[-2], train[-1]
    if not (np.isfinite(before) and np.isfinite(last)) or before == 0:
        return False
    return bool((before - last) / abs(before) >= FAST_FALL)


def _advice_overfitting(onset: int, best: int) -> str:
    return (
        f"Validation loss rose from epoch {onset} while training loss kept falling: the model started to "
        f"memorise the training images instead of learning what generalises. Use the best checkpoint "
        f"(epoch {best}); to do better, add augmentation or dropout, use more training images, or a smaller "
        f"model, and stop earlier (early stopping)."
    )


def _advice_no_overfitting(
    val: np.ndarray, train: np.ndarray, epochs: list[int], best: int, threshold: float, patience: int
) -> str:
    last = len(val) - 1
    unstable = _find_onset(val, train, best, threshold, patience, need_train_fall=False)
    if unstable is not None:
        return (
            f"Validation loss rose from epoch {epochs[unstable]}, but training loss did not fall either: "
            f"this looks like unstable training rather than overfitting. Use the best checkpoint "
            f"(epoch {epochs[best]}) and try a lower learning rate."
        )
    if val[last] > threshold:
        return (
            f"Validation loss rose in the last epoch(s) only, too briefly to call it overfitting. Use the "
            f"best checkpoint (epoch {epochs[best]}); train a few more epochs to see whether the rise lasts."
        )
    if val[last] <= val[best]:
        return (
            f"Validation loss was still at its lowest at the last epoch ({epochs[last]}) while training loss "
            f"has levelled off. The model does not overfit; more epochs may still help a little."
        )
    return (
        f"Validation loss levelled off after epoch {epochs[best]} (it stayed close to its best): training "
        f"has converged and the model does not overfit. More epochs will not help much."
    )


def _advice_improving(last_epoch: int) -> str:
    return (
        f"Training and validation loss were both still falling at the last epoch ({last_epoch}): the model "
        f"has not finished learning, and it does not overfit yet. More epochs should still help."
    )


def _advice_underfitting(first: float, best: float, best_epoch: int) -> str:
    return (
        f"Training loss fell only from {first:.3g} to {best:.3g} (epoch {best_epoch}): the model does not fit even "
        f"the images it trains on. Check the labels first; then try a higher learning rate, more epochs or a "
        f"larger model."
    )


def _underfits(train: np.ndarray, train_acc: np.ndarray, b: int) -> bool:
    """The model fits its own training images poorly (see :func:`diagnose_overfitting`)."""
    first, at_best = train[0], train[b]
    if not (np.isfinite(first) and np.isfinite(at_best)) or first <= 0:
        return False
    if at_best <= UNDERFIT_LOSS_FRACTION * first:
        return False
    return not (np.isfinite(train_acc[b]) and train_acc[b] >= UNDERFIT_ACCURACY)


def _advice_too_few(n: int) -> str:
    return (
        f"Only {n} epoch{'s' if n != 1 else ''}: train for at least {MIN_EPOCHS} epochs to judge whether the "
        f"model over- or underfits."
    )


def diagnose_overfitting(
    history: Sequence[Mapping[str, Any]], *, patience: int = 2, tolerance: float = 0.02
) -> OverfittingDiagnosis:
    """Diagnose over- and underfitting from per-epoch training and validation loss.

    Definitions (epochs are numbered as in the history's ``epoch`` key, 1-based):

    - **best epoch** ``b``: the epoch with the lowest validation loss ``L*`` (the first one on ties; NaN
      losses are ignored). Its weights are the checkpoint to use.
    - **clearly worse**: an epoch whose validation loss exceeds ``L* + tolerance * |L*|``, i.e. is more than
      ``tolerance`` (relative, 0.02 = 2 %) above the minimum.
    - **onset epoch**: the first epoch ``t > b`` such that epochs ``t .. t + patience - 1`` are all clearly
      worse *and* have a training loss below the training loss at ``b`` (the model keeps fitting the
      training images better while getting worse on validation images). ``None`` when there is no such
      epoch.
    - **generalisation gap**: ``val_loss - train_loss`` at ``b`` (and ``train_accuracy - val_accuracy`` at
      ``b`` when the history has accuracies); **final gap**: ``val_loss - train_loss`` at the last epoch.
      The training loss is averaged over an epoch with augmentation and dropout active, so a small negative
      gap is normal.

    Verdicts, checked in this order:

    1. ``"too few epochs to tell"``: fewer than 3 epochs.
    2. ``"overfitting"``: there is an onset epoch.
    3. ``"underfitting"``: the model fits even its training images poorly: the training loss at ``b`` is
       still at least half of the first epoch's, and (when the history has accuracies) the training accuracy
       at ``b`` is below 0.9. A model that learned most of what it could (98 % accuracy) is never called
       underfitting, however its curves end.
    4. ``"still improving"``: the last epoch has the lowest validation loss (validation loss is still at its
       minimum) and the last epoch lowered training loss by at least 5 % (relative): the model is still
       learning; more epochs should help.
    5. ``"no overfitting detected"``: otherwise (converged, or a rise too short or not accompanied by a
       falling training loss; the advice says which).

    Parameters
    ----------
    history : sequence of mappings
        One mapping per epoch with ``epoch`` (int), ``train_loss`` and ``val_loss`` (float), optionally
        ``train_accuracy`` and ``val_accuracy``; other keys are ignored.
    patience : int, optional
        Number of consecutive clearly worse epochs that make a rise lasting (>= 1).
    tolerance : float, optional
        Relative margin above the minimum validation loss that counts as clearly worse (>= 0).

    Returns
    -------
    OverfittingDiagnosis
    """
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if len(history) == 0:
        raise ValueError("the history is empty: train for at least one epoch")
    val = _column(history, "val_loss")
    train = _column(history, "train_loss")
    if not np.isfinite(val).any():
        raise ValueError("the history has no finite val_loss: is there a validation split?")
    epochs = [int(row.get("epoch", i + 1)) for i, row in enumerate(history)]
    n = len(history)
    b = int(np.argmin(np.where(np.isfinite(val), val, np.inf)))
    best_val = float(val[b])
    threshold = best_val + tolerance * abs(best_val)
    train_acc, val_acc = _column(history, "train_accuracy"), _column(history, "val_accuracy")
    acc_gap = float(train_acc[b] - val_acc[b]) if np.isfinite(train_acc[b] - val_acc[b]) else None

    onset: int | None = None
    if n < MIN_EPOCHS:
        verdict, advice = VERDICT_TOO_FEW, _advice_too_few(n)
    else:
        onset = _find_onset(val, train, b, threshold, patience, need_train_fall=True)
        if onset is not None:
            verdict, advice = VERDICT_OVERFITTING, _advice_overfitting(epochs[onset], epochs[b])
        elif _underfits(train, train_acc, b):
            verdict, advice = VERDICT_UNDERFITTING, _advice_underfitting(float(train[0]), float(train[b]), epochs[b])
        elif val[-1] <= best_val and _falls_fast(train):
            verdict, advice = VERDICT_IMPROVING, _advice_improving(epochs[-1])
        else:
            verdict = VERDICT_NONE
            advice = _advice_no_overfitting(val, train, epochs, b, threshold, patience)

    return OverfittingDiagnosis(
        verdict=verdict,
        overfitting=verdict == VERDICT_OVERFITTING,
        onset_epoch=epochs[onset] if onset is not None else None,
        best_epoch=epochs[b],
        best_val_loss=best_val,
        train_loss_at_best=float(train[b]),
        generalisation_gap=float(val[b] - train[b]),
        accuracy_gap=acc_gap,
        final_gap=float(val[-1] - train[-1]),
        n_epochs=n,
        advice=advice,
        patience=int(patience),
        tolerance=float(tolerance),
    )
