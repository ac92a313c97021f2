"""Where DiffusionNAG-BO's generated pool lands under each ``ofa:imagenet`` budget.

For each budget: DiffusionNAG-BO's cost guidance as a run fits it (its defaults, seed
``--seed``), then ``--num`` cells generated as its pool is (ODE sampler, 10 steps, scale 10)
with only that guidance (its ceiling, and with ``--floors`` also a band: option
``budget_floor``), and without guidance; for each: the share of valid cells, of valid cells within
the budget, of valid cells in the top 5 % of the budget (where the best cells are), and the median
cost of the valid cells as a share of the limit. It says how much of a generated pool survives
the restricted space's filter, and where, before any accuracy guidance. Usage:

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/ofa_bo_pool.py \
        --num 200 --floors 0.95
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


def pool_line(budget: str, num: int, seed: int, floor: float | None) -> str:
    """One row: unguided generation when ``floor`` is None, else guided with that floor."""
    option, cost, limit = BUDGETS[budget]
    space = ofa_evaluator(f"imagenet,{option}").search_space()
    assert isinstance(space, ConstrainedSpace)
    strategy = get_strategy("diffusionnag-bo", space, seed, budget_floor=floor or 0.0)
    model = strategy.score_model_for_space()
    score = model.score_fn()
    name = "unguided" if floor is None else "guided"
    if floor:
        name += f", floor {floor:g}"
    if floor is not None:
        log_p = combined_log_prob(strategy.budget_guidance())
        score = guided(score, log_p, sigma_scaled(10.0, model.sde.std))
    result = generate(model, num, SamplerConfig("ode", 10), seed=seed, score=score)
    valid = result.valid
    within = [arch for arch in valid if space.feasible(arch)]
    costs = np.array([space.costs(arch)[cost] for arch in valid]) / limit
    top = np.mean((costs >= 0.95) & (costs <= 1.0))
    return (
        f"| {budget} | {name} | {len(valid) / num:.1%} | {len(within) / max(len(valid), 1):.1%} "
        f"| {top:.1%} | {np.median(costs):.1%} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num", type=int, default=200, help="cells generated per pool")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--floors", type=float, nargs="*", default=[], help="budget_floor values")
    parser.add_argument("--budgets", nargs="+", choices=list(BUDGETS), default=list(BUDGETS))
    args = parser.parse_args()
    print(
        "| budget | generation | valid | valid within budget | in 95-100 % | median cost / limit |"
    )
    print("|---|---|---|---|---|---|")
    for budget in args.budgets:
        for floor in (None, 0.0, *args.floors):
            print(pool_line(budget, args.num, args.seed, floor), flush=True)


if __name__ == "__main__":
    main()
