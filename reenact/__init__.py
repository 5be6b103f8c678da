"""reenact: one-shot facial expression reenactment from a single photo, served by Triton."""

__version__ = "0.1.0"
