"""The checkers of user code (check_op, check_network, check_sgd_step,
check_vjp, check_grad) and the engine under them.
"""
