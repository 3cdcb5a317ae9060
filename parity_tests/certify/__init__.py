"""``python -m reference_impl certify``."""
