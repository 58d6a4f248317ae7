"""The native OpenFX bridge's C sources, compiled by `vstpipe ofx bundle` (see README.md)."""
