"""mlapi: honest IMDb sentiment experiments and a validated prediction API."""

__version__ = "0.1.0"
