from __future__ import annotations

import pytest
import torch

from convscope.tasks.semantic import SemanticTask


def _stats(task: SemanticTask, logits: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    return {k: float(v) for k, v in task.batch_stats(logits, target).items()}


def test_binary_metrics_match_hand_counts() -> None:
    task = SemanticTask()
    target = torch.tensor([[[0, 1, 1, 0], [0, 0, 1, 0]]])  # 3 foreground pixels of 8
    logits = torch.tensor([[[[-5.0, 5.0, -5.0, 5.0], [-5.0, -5.0, 5.0, -5.0]]]])  # tp 2, fp 1, fn 1
    metrics = task.summarize(_stats(task, logits, target), 1)
    assert metrics["dice"] == pytest.approx(4 / 6)
    assert metrics["iou"] == pytest.approx(2 / 4)
    assert metrics["pixel_accuracy"] == pytest.approx(6 / 8)
    assert task.num_outputs == 1 and task.probabilities(logits).shape == (1, 2, 2, 4)


def test_threshold_changes_the_decision() -> None:
    logits = torch.full((1, 1, 2, 2), 0.5)  # p = 0.62
    assert SemanticTask(threshold=0.5).predict(logits).sum() == 4
    assert SemanticTask(threshold=0.7).predict(logits).sum() == 0


def test_empty_foreground_predicted_empty_scores_one() -> None:
    task = SemanticTask()
    metrics = task.summarize(_stats(task, torch.full((1, 1, 3, 3), -9.0), torch.zeros(1, 3, 3, dtype=torch.long)), 1)
    assert metrics == {"dice": 1.0, "iou": 1.0, "pixel_accuracy": 1.0}


def test_multiclass_uses_ce_dice_and_argmax() -> None:
    task = SemanticTask(("background", "a", "b"), loss_name="bce_dice")
    assert task.loss_name == "ce_dice" and task.num_outputs == 3
    target = torch.tensor([[[0, 1], [2, 2]]])
    logits = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 10
    assert torch.equal(task.predict(logits), target)
    metrics = task.summarize(_stats(task, logits, target), 1)
    assert metrics["dice"] == pytest.approx(1.0) and task.loss(logits, target).item() < 0.05
