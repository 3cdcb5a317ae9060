"""The package itself: layout, layering, imports, installation and the pytest plugin."""
