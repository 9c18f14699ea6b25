"""The package version, at the bottom floor so that every layer can name it without importing `kaiga`."""

__version__ = "0.1.0"
