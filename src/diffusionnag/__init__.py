"""DiffusionNAG: neural architecture generation by guided score-based diffusion."""

__version__ = "0.1.0"
