"""Shipped looks: one TOML file per preset and the style images they name (see SOURCES.md)."""
