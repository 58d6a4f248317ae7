"""The effects that ship with vstpipe (installed as ``vstpipe.plugins_data``); see README.md."""
