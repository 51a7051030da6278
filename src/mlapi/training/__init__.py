"""Training: `loop.py` (fit, evaluate, predict_proba) and `callbacks.py` (Keras-like callbacks).

Import from the submodules. This package file stays free of torch, because the CLI imports
`mlapi.training.commands` at start-up and the server must start without torch.
"""
