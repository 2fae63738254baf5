"""Lets `scrapyd-deploy` build the project egg (`setup.py bdist_egg`).

All metadata lives in pyproject.toml.
"""

from setuptools import setup

setup()
