"""Options that keep the model-based and proxy strategies to a fraction of a second per ask in
tests (the proxies' small pools still leave them to fill most of a budget with random cells)."""

FAST_OPTIONS = {
    "bananas": {"members": 3, "epochs": 15, "num_candidates": 40},
    "diffusionnag-bo": {"num_init": 20, "members": 2, "fit_steps": 5, "pool_size": 40, "steps": 4},
    "params": {"pool_size": 300},
    "zc-naswot": {"pool_size": 2, "batch_size": 4},
    "zc-synflow": {"pool_size": 2},
}
for _ablation in ("bo-pool-random", "bo-pool-mutation", "bo-pool-mix"):
    FAST_OPTIONS[_ablation] = FAST_OPTIONS["diffusionnag-bo"]
