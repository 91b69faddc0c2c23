"""Tasks: what differs between classification, semantic segmentation and instance segmentation (see
:mod:`convscope.tasks.base` for the contract and how to add one). :data:`TASKS` is the one registry."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from convscope.errors import ConvscopeError
from convscope.tasks.base import ExportedOutput, Kind, SplitResult, Task
from convscope.tasks.classification import ClassificationTask
from convscope.tasks.flows import FlowTask
from convscope.tasks.semantic import SemanticTask
from convscope.tasks.stardist import StarDistTask

#: Every task by its recipe name (``task:`` of a recipe, ``"task"`` of ``model/config.json``).
TASKS: dict[str, Any] = {
    "classification": ClassificationTask,
    "semantic": SemanticTask,
    "stardist": StarDistTask,
    "flows": FlowTask,
}

__all__ = ["TASKS", "ClassificationTask", "ExportedOutput", "FlowTask", "Kind", "SemanticTask", "SplitResult",
           "StarDistTask", "Task", "task_class", "task_from_model_config", "task_from_recipe"]


def task_class(name: str) -> Any:
    """The task class registered as ``name``; a :class:`ConvscopeError` with the known names otherwise."""
    if name in TASKS:
        return TASKS[name]
    close = difflib.get_close_matches(str(name), list(TASKS), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConvscopeError(f"task: unknown task '{name}'; {hint}known: {', '.join(TASKS)}")


def task_from_recipe(recipe: Any, class_names: Sequence[str]) -> Task:
    """The task of a recipe (:class:`convscope.config.RunConfig`) for data with ``class_names``."""
    return task_class(recipe.task).from_recipe(recipe, class_names)


def task_from_model_config(config: dict[str, Any]) -> Task:
    """The task of a saved run (``model/config.json``), with its tuned thresholds."""
    return task_class(config.get("task", "classification")).from_model_config(config)
