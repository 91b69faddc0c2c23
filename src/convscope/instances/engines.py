"""Which implementation runs the star-convex decode: compiled numba kernels, or the numpy reference.

``engine="auto"`` (the default everywhere) uses the numba kernels of :mod:`convscope.instances._compiled` when numba
is installed and the environment variable ``CONVSCOPE_NUMBA`` is not ``0``, else the pure numpy implementation.
Both give identical label images (``tests/instances/test_engines.py`` checks it on synthetic and real predictions);
the numpy one is the reference and stays callable with ``engine="numpy"``. numba is imported on first use, not when
convscope is imported.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Literal

from convscope.errors import ConvscopeError

__all__ = ["ENGINES", "ENV_VAR", "Engine", "compiled"]

Engine = Literal["auto", "numba", "numpy"]
ENGINES: tuple[str, ...] = ("auto", "numba", "numpy")
#: Set to 0 to make ``engine="auto"`` use the numpy reference.
ENV_VAR = "CONVSCOPE_NUMBA"
_OFF = {"0", "false", "no", "off"}


def compiled(engine: Engine = "auto") -> ModuleType | None:
    """The compiled kernels for ``engine``, or None for the numpy reference.

    Parameters
    ----------
    engine : {"auto", "numba", "numpy"}
        ``numba`` requires numba (a :class:`ConvscopeError` with the install hint otherwise); ``auto`` uses it when
        installed and not switched off with ``CONVSCOPE_NUMBA=0``.

    Returns
    -------
    module or None
        :mod:`convscope.instances._compiled`, or None.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "numpy" or (engine == "auto" and os.environ.get(ENV_VAR, "").strip().lower() in _OFF):
        return None
    try:
        return importlib.import_module("convscope.instances._compiled")  # numba is optional: imported on first use
    except ImportError:
        if engine == "numba":
            raise ConvscopeError("engine 'numba' needs numba: pip install numba") from None
        return None
