from __future__ import annotations

import json

import pytest

from convscope.metrics.overfitting import diagnose_overfitting


def make_history(train, val, train_acc=None, val_acc=None):
    rows = []
    for i, (t, v) in enumerate(zip(train, val, strict=True)):
        row = {"epoch": i + 1, "train_loss": t, "val_loss": v}
        if train_acc is not None:
            row["train_accuracy"], row["val_accuracy"] = train_acc[i], val_acc[i]
        row.update(lr=1e-3, seconds=1.5)
        rows.append(row)
    return rows


TRAIN_FALLING = [1.0, 0.75, 0.55, 0.42, 0.33, 0.26, 0.20, 0.15, 0.11, 0.08]


def test_overfitting_onset_is_the_first_epoch_of_the_lasting_rise():
    val = [1.0, 0.8, 0.6, 0.5, 0.45, 0.44, 0.47, 0.52, 0.60, 0.70]
    acc_t = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99]
    acc_v = [0.5, 0.6, 0.68, 0.75, 0.78, 0.80, 0.79, 0.78, 0.77, 0.76]
    d = diagnose_overfitting(make_history(TRAIN_FALLING, val, acc_t, acc_v))
    assert d.verdict == "overfitting" and d.overfitting
    assert d.best_epoch == 6 and d.onset_epoch == 7
    assert d.best_val_loss == pytest.approx(0.44)
    assert d.train_loss_at_best == pytest.approx(0.26)
    assert d.generalisation_gap == pytest.approx(0.18)
    assert d.accuracy_gap == pytest.approx(0.10)
    assert d.final_gap == pytest.approx(0.62)
    assert "epoch 7" in d.advice and "epoch 6" in d.advice
    assert "overfitting" in d.summary.lower() and "\n" not in d.summary


def test_rise_within_tolerance_does_not_start_the_onset():
    # epoch 7 is only 1 % above the minimum (tolerance 2 %): the rise starts at epoch 8
    val = [1.0, 0.8, 0.6, 0.5, 0.45, 0.44, 0.4444, 0.47, 0.52, 0.60]
    d = diagnose_overfitting(make_history(TRAIN_FALLING, val))
    assert d.onset_epoch == 8 and d.best_epoch == 6
    assert diagnose_overfitting(make_history(TRAIN_FALLING, val), tolerance=0.0).onset_epoch == 7


def test_patience_rise_in_the_last_epoch_only():
    val = [1.0, 0.8, 0.6, 0.5, 0.45, 0.44, 0.43, 0.42, 0.41, 0.50]
    short = diagnose_overfitting(make_history(TRAIN_FALLING, val), patience=2)
    assert short.verdict == "no overfitting detected" and short.onset_epoch is None
    assert "last epoch" in short.advice
    assert diagnose_overfitting(make_history(TRAIN_FALLING, val), patience=1).onset_epoch == 10


def test_temporary_rise_then_new_minimum_is_not_overfitting():
    val = [1.0, 0.8, 0.6, 0.7, 0.75, 0.5, 0.45, 0.44, 0.435, 0.44]
    d = diagnose_overfitting(make_history(TRAIN_FALLING, val))
    assert not d.overfitting and d.best_epoch == 9


def test_steadily_improving_is_still_improving_not_underfitting():
    d = diagnose_overfitting(make_history([1.2, 0.8, 0.55, 0.4, 0.3], [1.0, 0.7, 0.5, 0.37, 0.28]))
    assert d.verdict == "still improving" and not d.overfitting and d.onset_epoch is None
    assert d.best_epoch == 5
    assert "more epochs" in d.advice.lower() and "does not overfit" in d.advice
    assert d.summary.startswith("Still improving")


def test_a_high_accuracy_still_improving_run_is_never_called_underfitting():
    # the demo: 98.8 % accuracy, the last epoch the best one and training loss still falling
    train = [0.45, 0.2, 0.12, 0.08, 0.06, 0.045]
    val = [0.3, 0.15, 0.1, 0.07, 0.055, 0.045]
    acc_t = [0.85, 0.93, 0.96, 0.975, 0.982, 0.986]
    acc_v = [0.9, 0.95, 0.97, 0.98, 0.985, 0.988]
    d = diagnose_overfitting(make_history(train, val, acc_t, acc_v))
    assert d.verdict == "still improving" and "underfitting" not in d.summary.lower()


def test_a_model_that_does_not_fit_its_training_images_is_underfitting():
    train = [0.70, 0.68, 0.66, 0.65, 0.64]
    val = [0.71, 0.69, 0.67, 0.66, 0.65]
    d = diagnose_overfitting(make_history(train, val, [0.5, 0.52, 0.55, 0.57, 0.58], [0.5, 0.5, 0.54, 0.55, 0.56]))
    assert d.verdict == "underfitting" and "does not fit even the images it trains on" in d.advice
    assert d.summary.startswith("Underfitting")
    # the same losses at 95 % training accuracy (a fine-tuned model that starts good) are not underfitting
    fine = diagnose_overfitting(make_history(train, val, [0.93, 0.94, 0.95, 0.95, 0.95], [0.9] * 5))
    assert fine.verdict != "underfitting"


def test_converged_is_no_overfitting():
    train = [1.0, 0.6, 0.45, 0.40, 0.39, 0.385, 0.383]
    val = [1.0, 0.6, 0.45, 0.41, 0.40, 0.402, 0.401]
    d = diagnose_overfitting(make_history(train, val))
    assert d.verdict == "no overfitting detected" and d.best_epoch == 5 and d.accuracy_gap is None


def test_both_losses_rising_is_unstable_not_overfitting():
    train = [1.0, 0.7, 0.5, 0.6, 0.8, 0.9]
    val = [1.0, 0.7, 0.5, 0.65, 0.9, 1.1]
    d = diagnose_overfitting(make_history(train, val))
    assert d.verdict == "no overfitting detected"
    assert "learning rate" in d.advice


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_epochs(n):
    d = diagnose_overfitting(make_history([1.0, 0.5][:n], [1.0, 1.5][:n]))
    assert d.verdict == "too few epochs to tell"
    assert not d.overfitting and d.onset_epoch is None and d.n_epochs == n
    assert d.best_epoch == 1


def test_to_dict_is_json_with_summary():
    d = diagnose_overfitting(
        make_history(TRAIN_FALLING, [1, 0.8, 0.6, 0.5, 0.45, 0.44, 0.47, 0.52, 0.6, 0.7])
    )
    out = d.to_dict()
    assert out["verdict"] == "overfitting" and out["onset_epoch"] == 7 and out["summary"] == d.summary
    assert json.loads(json.dumps(out)) == out


def test_nan_loss_is_ignored_and_reported_as_none():
    train = [1.0, 0.5, float("nan"), 0.3]
    d = diagnose_overfitting(make_history(train, [1.0, 0.6, float("nan"), 0.5]))
    assert d.best_epoch == 4
    assert diagnose_overfitting(make_history(train[:3], [1.0, 0.6, 0.7])).to_dict()["final_gap"] is None


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"patience": 0}, "patience"), ({"tolerance": -1}, "tolerance")]
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        diagnose_overfitting(make_history([1, 0.5, 0.4], [1, 0.5, 0.4]), **kwargs)
    with pytest.raises(ValueError, match="empty"):
        diagnose_overfitting([])
