"""Bad input to every public function: a clear exception naming an argument the
caller passed, never a wrong number, a hang or a crash from inside.
"""
