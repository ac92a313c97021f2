"""Options that keep the model-based strategies to a fraction of a second per ask in tests."""

FAST_OPTIONS = {
    "bananas": {"members": 3, "epochs": 15, "num_candidates": 40},
    "diffusionnag-bo": {"num_init": 20, "members": 2, "fit_steps": 5, "pool_size": 40, "steps": 4},
}
for _ablation in ("bo-pool-random", "bo-pool-mutation", "bo-pool-mix"):
    FAST_OPTIONS[_ablation] = FAST_OPTIONS["diffusionnag-bo"]
