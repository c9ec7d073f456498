"""The book's plugins for its tools: the Sphinx extension and the pytest (and nbval) hooks."""
