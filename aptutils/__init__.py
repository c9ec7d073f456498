"""aptutils: the package behind the book reproducing arXiv:2509.03407 (APT, BERT-6, clusters).

Chapters import it and call it; all logic lives here, unit-tested in tests/.
"""
from .core.errors import DataError, ParameterError
from .core.params import Settings, configure, resolve
from .core.store import Store

__all__ = ["DataError", "ParameterError", "Settings", "Store", "configure", "resolve"]
