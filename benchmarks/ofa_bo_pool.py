"""Where DiffusionNAG-BO's generated pool lands under each ``ofa:imagenet`` budget.

For each budget: DiffusionNAG-BO's cost guidance as a run fits it (its defaults, seed
``--seed``), then ``--num`` cells generated as its pool is (ODE sampler, 10 steps, scale 10)
with only that guidance, and without guidance; for each: the share of valid cells, of valid
cells within the budget, and the median cost of the valid cells as a share of the limit. It says
how much of a generated pool survives the restricted space's filter, before any accuracy
guidance. Usage:

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/ofa_bo_pool.py --num 200
"""

from __future__ import annotations

import argparse

import numpy as np

from diffusionnag.evaluators.ofa import ofa_evaluator
from diffusionnag.generate import SamplerConfig, generate
from diffusionnag.guidance import combined_log_prob, guided, sigma_scaled
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.constrained import ConstrainedSpace

BUDGETS = {
    "flops<=300M": ("max_flops=300e6", "flops", 300e6),
    "flops<=450M": ("max_flops=450e6", "flops", 450e6),
    "latency<=25ms": ("max_latency_ms=25", "latency_ms", 25.0),
}


def pool_line(name: str, budget: str, num: int, seed: int) -> str:
    option, cost, limit = BUDGETS[budget]
    space = ofa_evaluator(f"imagenet,{option}").search_space()
    assert isinstance(space, ConstrainedSpace)
    strategy = get_strategy("diffusionnag-bo", space, seed)
    model = strategy.score_model_for_space()
    score = model.score_fn()
    if name == "guided":
        log_p = combined_log_prob(strategy.budget_guidance())
        score = guided(score, log_p, sigma_scaled(10.0, model.sde.std))
    result = generate(model, num, SamplerConfig("ode", 10), seed=seed, score=score)
    valid = result.valid
    within = [arch for arch in valid if space.feasible(arch)]
    costs = np.array([space.costs(arch)[cost] for arch in valid]) / limit
    return (
        f"| {budget} | {name} | {len(valid) / num:.1%} | {len(within) / max(len(valid), 1):.1%} "
        f"| {np.median(costs):.1%} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num", type=int, default=200, help="cells generated per pool")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| budget | generation | valid | valid within budget | median cost / limit |")
    print("|---|---|---|---|---|")
    for budget in BUDGETS:
        for name in ("unguided", "guided"):
            print(pool_line(name, budget, args.num, args.seed), flush=True)


if __name__ == "__main__":
    main()
