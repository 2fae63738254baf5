"""`ProductStore`: the sum of the store's parts (see the package docstring for the contract)."""

from __future__ import annotations

from cumpair.index.store.health import Health
from cumpair.index.store.opening import Opening
from cumpair.index.store.persistence import Persistence
from cumpair.index.store.searching import Searching
from cumpair.index.store.titles import Titles
from cumpair.index.store.upgrade import Upgrade
from cumpair.index.store.validation import Validation
from cumpair.index.store.writing import Writing


class ProductStore(Opening, Writing, Validation, Searching, Titles, Persistence, Upgrade, Health):
    """FAISS + SQLite store of offers; see the package docstring for the contract."""
