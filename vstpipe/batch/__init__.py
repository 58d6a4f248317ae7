"""`vstpipe batch`: many inputs x many looks, resumable, on this machine's devices or on Ray.

``plan`` reads a job file (or the command line's inputs and presets) into tasks; ``ledger``
records finished outputs with their settings' hash; ``work`` renders one task in a worker that
keeps its model; ``local`` runs workers as processes on this machine; ``run`` coordinates.
"""
