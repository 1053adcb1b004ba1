"""Readers of result assets, one module per format family; each reads a window of one asset lazily."""
