"""The search loop: strategies ask, evaluators answer, one history (journaled) holds the truth.

Strategies live in :mod:`diffusionnag.search.strategies` (one registry); the loop in
:mod:`diffusionnag.search.run`; a run as a user starts it in :mod:`diffusionnag.search.job`.
"""
