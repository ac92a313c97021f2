"""Adapters that plug diffusionnag into other libraries' APIs.

Each module here imports its library when it is imported (an optional extra, e.g.
``pip install 'diffusionnag[optuna]'``), so importing this package alone needs nothing extra.
"""
