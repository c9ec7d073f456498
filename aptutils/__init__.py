"""aptutils: the package behind the book reproducing arXiv:2509.03407 (APT, BERT-6, clusters).

Chapters import it and call it; all logic lives here, unit-tested in tests/.
"""
from .params import ParameterError, Settings, configure, resolve
from .store import Store

__all__ = ["ParameterError", "Settings", "Store", "configure", "resolve"]
