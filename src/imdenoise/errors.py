"""User-facing error types: the CLI and the server print their message, never a traceback."""

from __future__ import annotations


class ImDenoiseError(Exception):
    """Base of every error caused by the user's input (file, value, limit), not by a bug."""


class ImageReadError(ImDenoiseError):
    """An image file is missing, unreadable, truncated or of an unsupported kind."""


class ImageTooLargeError(ImageReadError):
    """An image exceeds the configured pixel limit (decompression-bomb guard); `width` and `height`
    are the header's claim when known, so a caller can word its own limit."""

    def __init__(self, message: str, width: int | None = None, height: int | None = None) -> None:
        super().__init__(message)
        self.width, self.height = width, height


class ImageWriteError(ImDenoiseError):
    """An output image cannot be written (unsupported format/dtype, or the path is not writable)."""


class OutputExistsError(ImageWriteError):
    """The output file exists and overwriting was not requested."""


class NoiseSpecError(ImDenoiseError):
    """A noise specification string such as ``gaussian:25`` is malformed or out of range."""


class ConfigError(ImDenoiseError):
    """A configuration file or a ``--set key=value`` override is invalid."""


class WeightsError(ImDenoiseError):
    """A weights file is missing, corrupted, unsafe to load, or does not match its model."""


class UnknownMethodError(ImDenoiseError):
    """A model or method name is not in the registry and is not a path to a weights file."""


class RunWriteError(ImDenoiseError):
    """A training run cannot write its folder (read-only, full disk); the message says how to continue."""
