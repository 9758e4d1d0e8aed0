"""Jittor side of the landscape-synthesis pipeline: data, model, training, generation.

This package never imports torch; `evaluation` never imports jittor.
"""

__version__ = "0.1.0"
