"""The one exception type for mistakes a user can fix."""

from __future__ import annotations


class ConvscopeError(Exception):
    """A user error: bad data, a bad recipe key, a missing run directory.

    The message is one line that names the file or key and the fix. The CLI prints it and exits
    with code 2, without a traceback.
    """
