"""Governed content in `content/`: the registry, the lock, and the selection per document."""
