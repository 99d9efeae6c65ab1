"""Training: typed recipes (``config``), on-the-fly patch data, losses and the loop."""
