"""pytest plugin for projects that check their gradients against reference_impl."""
