#!/usr/bin/env python3
"""Find a product by photo, text or GTIN and compare its offers across shops.

A thin wrapper: the same code and arguments as `cumpair search` (see cumpair/search/cli.py).
"""

import sys

from cumpair.search.cli import main_search

if __name__ == "__main__":
    sys.exit(main_search())
