"""The ``convscope`` command line."""
