"""The accuracy model: the reference against ball arithmetic (the truth tier)
and the acceptance rule on implementations a user might write.
"""
