"""A package's names loaded on first use (PEP 562).

`cumpair.index`, `cumpair.index.store`, `cumpair.alerts` and `cumpair.embed` keep their cheap
modules importable without their heavy ones (numpy, FAISS, SQLite, smtplib, Pillow); this is the
one module `__getattr__` they share instead of each writing it.
"""

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(namespace: dict[str, Any], modules: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module `__getattr__` that imports `name` from `modules[name]` when first asked.

    The value is kept in `namespace` (the package's `globals()`), so later reads are plain
    attribute look-ups and never come back here.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
