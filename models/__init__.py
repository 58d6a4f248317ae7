"""Models that ship inside vstpipe (importlib.resources: vstpipe.models_data)."""
