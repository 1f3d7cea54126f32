"""fkhw: hardware co-simulation of radiation faults in quantized neural networks."""

__version__ = "0.1.0"
