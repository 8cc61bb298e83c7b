"""The full likelihoods' gradient with the fused exposure kernel against the graph twin it replaced.

    python benchmarks/full_gradient.py                  # N = 8,880 and 100,000
    python benchmarks/full_gradient.py --n 1000000

For each family (Weibull, exponential, piecewise exponential with the default 8 intervals) and
size, the model is built twice from the same data, with ``fused=True`` (the default) and
``fused=False`` (the sum written out in pytensor), compiled by pytensor's numba backend (what
nutpie samples), and one log density with its gradient is timed at the model's initial point,
the best of several batches. The ratio is graph / kernel in the same process; nine covariates
as in speed.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cox_scaling import simulate  # noqa: E402
from speed import COVS  # noqa: E402


def _grad_seconds(model) -> float:
    import pytensor

    logp = model.logp()
    fn = pytensor.function(model.value_vars, [logp, *pytensor.grad(logp, model.value_vars)], mode="NUMBA")
    x = [v for v in model.initial_point().values()]
    fn(*x)
    best = float("inf")
    reps = 20
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn(*x)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main() -> None:
    import bayescrt as bc
    from bayescrt.families.exponential import build_exponential
    from bayescrt.families.piecewise import build_pwe, default_cuts
    from bayescrt.families.weibull import build_weibull
    from bayescrt.priors import resolve_priors

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[8880, 100_000])
    args = ap.parse_args()
    builders = {"WeibullPH": lambda d, p, **k: build_weibull(d, p, **k),
                "ExponentialPH": lambda d, p, **k: build_exponential(d, p, **k),
                "PiecewiseExponentialPH": lambda d, p, **k: build_pwe(d, p, default_cuts(d, 8), **k)}
    print(f"{'family':24s} {'N':>9s} {'graph ms':>9s} {'kernel ms':>10s} {'graph/kernel':>13s}")
    for n in args.n:
        df = simulate(n)
        for name, build in builders.items():
            est = getattr(bc, name)()
            data = est.prepare(df, time="days", event="died", covariates=COVS)
            priors = resolve_priors(data.covariates, data.sources, data.scale, None)
            t = {f: _grad_seconds(build(data, priors, fused=f)[0]) for f in (False, True)}
            print(f"{name:24s} {n:9,d} {t[False] * 1e3:9.3f} {t[True] * 1e3:10.3f} {t[False] / t[True]:13.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
