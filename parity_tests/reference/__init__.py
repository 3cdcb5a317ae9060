"""The reference on its own: identities of the derivatives, named special
cases, three ways to the network gradients, the adjoint test of every op.
"""
