"""PEO: post-training extrapolation of two aspect policies (helpfulness, harmlessness)."""

__version__ = "0.1.0"
