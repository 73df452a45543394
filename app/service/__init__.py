"""The sample service stageflow ships: one JSON endpoint and a health check."""

__version__ = "1.0.0"
