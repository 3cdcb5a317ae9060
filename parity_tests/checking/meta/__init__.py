"""Meta-tests: the checks themselves catch known-wrong gradients and pass correct ones."""
