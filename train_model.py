"""Train the Iris RandomForest and write modelo.pkl (+ modelo.onnx and JSON sidecars).

Usage: python train_model.py [--out PATH]   (default: $MODELO_PATH or ./modelo.pkl)
"""

import sys

from mlapi.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "iris", *sys.argv[1:]]))
