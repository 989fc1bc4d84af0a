"""imdenoise: image denoising on PyTorch 2.

Public interface (a contract for scripts outside the project)::

    import imdenoise
    d = imdenoise.load("default")     # shipped model by name, a weights path, or a classical method
    clean = d.denoise(noisy)          # float32 HxW or HxWxC, any size; blind (sigma estimated)
    clean = d.denoise(noisy, sigma=25)
    imdenoise.list_models()

Heavy modules (torch) are imported lazily so that `import imdenoise` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["load", "list_models", "read_image", "write_image", "__version__"]

_LAZY = {
    "load": ("imdenoise.denoisers.catalog", "load"),
    "list_models": ("imdenoise.models.registry", "list_models"),
    "read_image": ("imdenoise.io.images", "read_image"),
    "write_image": ("imdenoise.io.images", "write_image"),
}

if TYPE_CHECKING:  # pragma: no cover
    from imdenoise.denoisers.catalog import load
    from imdenoise.io.images import read_image, write_image
    from imdenoise.models.registry import list_models


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'imdenoise' has no attribute {name!r}")
