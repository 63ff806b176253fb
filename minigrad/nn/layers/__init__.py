"""The layers of minigrad.nn, one module per kind."""
