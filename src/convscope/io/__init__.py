"""Reading and writing images and files: axes checked where data enters, outputs written atomically."""

from convscope.io.atomic import atomic_path, write_bytes, write_json, write_text
from convscope.io.image import IMAGE_SUFFIXES, read_image, write_image

__all__ = [
    "IMAGE_SUFFIXES", "atomic_path", "read_image", "write_bytes", "write_image", "write_json", "write_text",
]
