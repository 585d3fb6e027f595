"""The Faust application and its thin adapters onto :mod:`pipeline`."""
