"""Frugal: measure whether a smaller, quantized or pruned model is good enough, and what it saves."""

__version__ = "0.1.0"
