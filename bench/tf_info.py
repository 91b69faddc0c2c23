"""What the TensorFlow of a peer environment runs with (imported by the peer scripts, which run there)."""

from __future__ import annotations


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels; ``None`` without TensorFlow.

    TensorFlow turns them on by default only on CPUs with AVX-512 VNNI / BF16 / AMX; ``TF_ENABLE_ONEDNN_OPTS=1``
    turns them on elsewhere.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


#: The environment that turns TensorFlow's oneDNN kernels on whatever the CPU (the drivers time TF peers with and
#: without it).
ONEDNN_FORCED = {"TF_ENABLE_ONEDNN_OPTS": "1"}
