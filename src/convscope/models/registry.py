"""Model registry and factory, as in timm: ``create_model(name, **options)`` and ``list_models()``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from convscope.errors import ConvscopeError

ModelFn = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, the tasks it serves and a one-line description."""

    name: str
    fn: ModelFn
    tasks: tuple[str, ...]
    description: str
    default_input: tuple[int, int, int]

    def options(self) -> dict[str, object]:
        """Keyword options of the factory and their defaults."""
        sig = inspect.signature(self.fn)
        return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    *, tasks: tuple[str, ...], description: str, default_input: tuple[int, int, int]
) -> Callable[[ModelFn], ModelFn]:
    """Register a model factory under its function name.

    ``default_input`` is (H, W, C) of the images the model was designed for.
    """

    def deco(fn: ModelFn) -> ModelFn:
        if fn.__name__ in _REGISTRY:
            raise ValueError(f"model {fn.__name__!r} registered twice")
        _REGISTRY[fn.__name__] = ModelEntry(fn.__name__, fn, tasks, description, default_input)
        return fn

    return deco


def list_models(task: str | None = None) -> list[ModelEntry]:
    """Registered models, sorted by name, optionally only those serving ``task``."""
    _import_all()
    return sorted((e for e in _REGISTRY.values() if task is None or task in e.tasks), key=lambda e: e.name)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; a clear error naming the known models otherwise."""
    _import_all()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ConvscopeError(f"unknown model '{name}'; known models: {known} (see `convscope models`)")
    return _REGISTRY[name]


def create_model(name: str, **options: object) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    **options
        Keyword options of that model (``in_channels``, ``num_classes``, ``input_size``, ``dropout``,
        ``batch_norm``, ...). Unknown options raise :class:`ConvscopeError`.
    """
    entry = get_entry(name)
    allowed = entry.options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConvscopeError(
            f"model '{name}' has no option '{unknown[0]}'; its options are: {', '.join(allowed)}"
        )
    return entry.fn(**options)


def _import_all() -> None:
    # Importing the model modules runs their @register_model decorators.
    from convscope.models import classifiers, stardist, unet, vgg16  # noqa: F401
