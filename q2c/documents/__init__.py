"""Invoice documents: load from the marts, render to HTML and PDF, batch in a warm pool."""
