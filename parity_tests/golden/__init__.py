"""The golden fixtures: schema, manifest, replay, and the documents' own text."""
