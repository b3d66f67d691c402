"""ACRN on AVA: a reproduction pipeline faithful to MMAction2 0.x."""

__version__ = "0.1.0"
