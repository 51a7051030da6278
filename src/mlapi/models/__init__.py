"""Network definitions only: `lstm.py` (the seed's LSTMClassifier) and
`recurrent_dropout.py` (its exact recurrent-dropout step loop). Import from the submodules.
"""
