"""The run directory: the product of training, and what evaluate / predict / export read."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from convscope.config import RunConfig, parse_config
from convscope.errors import ConvscopeError
from convscope.io.atomic import write_json, write_text

MODEL_FORMAT = "convscope-model/1"


@dataclass(frozen=True)
class RunDir:
    """Paths of a run directory (``convscope train ... --out RUN``)."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def curves(self) -> Path:
        return self.path / "learning_curves.png"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def weights(self) -> Path:
        return self.model_dir / "weights.safetensors"

    @property
    def model_config(self) -> Path:
        return self.model_dir / "config.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def data_check(self) -> Path:
        """``data_check.json``: the cheap checks of the data training loaded (:mod:`convscope.datasets.precheck`)."""
        return self.path / "data_check.json"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def data_record(self) -> Path:
        """The data it was trained on: folder and content hash (:mod:`convscope.datasets.record`)."""
        return self.path / "data.json"

    def read_data_record(self) -> dict[str, Any] | None:
        return read_json(self.data_record) if self.data_record.is_file() else None

    @property
    def checkpoint(self) -> Path:
        """Last-epoch state for resuming (model, optimizer, RNG, history); removed when training ends."""
        return self.path / "checkpoint" / "last.pt"

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing, finished run directory; :class:`ConvscopeError` if ``path`` is not one."""
        run = cls(Path(path))
        if not run.model_config.is_file() or not run.weights.is_file() or not run.config.is_file():
            raise ConvscopeError(
                f"{path}: not a convscope run directory (no model/config.json, model/weights.safetensors or "
                "config.yaml); give the --out folder of a finished `convscope train`"
            )
        return run

    def read_model_config(self) -> dict[str, Any]:
        cfg = read_json(self.model_config)
        if cfg.get("format") != MODEL_FORMAT:
            raise ConvscopeError(f"{self.model_config}: unknown model format {cfg.get('format')!r}")
        return cfg

    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.metrics) if self.metrics.is_file() else {}

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics, metrics)

    def read_history(self) -> list[dict[str, float]]:
        if not self.history.is_file():
            return []
        with self.history.open(newline="") as fh:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]

    def write_history(self, history: list[dict[str, float]]) -> None:
        buf = io.StringIO()
        if history:
            writer = csv.DictWriter(buf, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        write_text(self.history, buf.getvalue())


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_run_config(run: RunDir) -> RunConfig:
    """The resolved recipe a run was trained with (provenance stripped); a one-line error naming the file when it
    is not readable YAML."""
    try:
        raw = yaml.safe_load(run.config.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConvscopeError(f"{run.config}: not a readable recipe ({first}); restore the file or retrain the "
                             "run") from None
    if isinstance(raw, dict):
        raw.pop("provenance", None)
    return parse_config(raw, source=str(run.config))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a one-line :class:`ConvscopeError` naming the file when it is not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConvscopeError(f"{path}: not readable JSON ({err}); restore the file or retrain the run") from None
    if not isinstance(data, dict):
        raise ConvscopeError(f"{path}: expected a JSON object; restore the file or retrain the run")
    return data
