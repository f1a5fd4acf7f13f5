"""Governed content: the registry of templates, themes and texts in `content/`."""
