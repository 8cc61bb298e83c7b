"""Importance sampling from the Laplace approximation, Pareto-smoothed: ``sampler="laplace"``.

A proportional-hazards posterior with a handful of log-HRs and thousands of events is close to normal
(Bernstein-von Mises), and NUTS spends some 36,000 gradients (4 chains x 2,000 iterations x 4.5 steps)
to describe what is nearly a multivariate normal. This sampler instead:

1. finds the mode of the log density on the sampler's unconstrained space (the PyMC model's own
   ``logp`` with its Jacobians, the prior included) by damped Newton steps, the Hessian from forward
   differences of the exact gradient;
2. draws proposals from a multivariate Student-t (``DF`` degrees of freedom, heavier tails than the
   normal) centred at the mode with the inverse negative Hessian as its scale matrix;
3. weighs each proposal by ``p(x) / q(x)`` and smooths the largest weights by a generalised Pareto fit
   (PSIS; Vehtari, Simpson, Gelman, Yao and Gabry 2024, :func:`bayescrt.psis.smooth_log_weights`), whose
   shape ``k`` says whether the weights can be trusted: the estimates have finite variance and converge
   at the usual rate for ``k < min(1 - 1 / log10(S), 0.7)``;
4. resamples each chain's draws from its own proposals (systematic resampling, ``OVERSAMPLE`` proposals
   per draw, then shuffled), so that the posterior comes back as equally weighted draws in chains, as
   every other sampler's does.

A model with one hierarchy scale (a shared frailty's SD, the piecewise baseline's random-walk SD:
``INTEGRATED_SCALES``) has no joint mode to expand about: the density rises without bound as the SD and the
effects it governs shrink together. There step 2 draws the scale's log from its Laplace marginal on a grid and
the rest from the t at their mode given it (:class:`_IntegratedProposal`, after the integrated nested Laplace
approximation of Rue, Martino and Chopin 2009); steps 3 and 4 are the same, the weights exact, so PSIS's ``k``
still says whether the proposal can be trusted. A model with two such scales is refused.

This is what rstanarm offers as ``algorithm = "optimizing"`` with importance resampling. The chains are
independent runs (their own proposals and seeds), so R-hat across them still checks that they agree;
the effective sample size is the importance sampler's, ``1 / sum(w^2)`` per chain, not the
autocorrelation ESS of the resampled draws (whose repeats it would not see). The diagnostics hold a
fit to R-hat, to ``k`` in every chain and to that ESS (:func:`bayescrt.diagnostics.diagnose`): where the
posterior is far from normal (a separated covariate, few events, a between-study SD over a handful of
studies) ``k`` is large and the fit fails them loudly; sample it with NUTS then.

Cost: a few dozen gradients for the mode and Hessian, and ``chains x draws x OVERSAMPLE`` evaluations
of the log density without its gradient, against NUTS's ~36,000 gradients; no nutpie compilation. Given
the family's ``pointwise`` log-likelihood (its numpy twin, :meth:`bayescrt.families.base.Estimator.fit`
passes it), the proposals are evaluated in batches by that twin (the Cox one is the compiled kernel, on
threads) plus the priors' terms, after checking that the two agree with the model's log density up to
a constant at the mode and at the first proposals; the terms of the kept draws are then the fit's stored
log-likelihood, with no second pass. The pytensor functions it needs (the log density with its gradient; the
posterior's variables and the priors' terms for a batch of proposals in one call, the model's graphs vectorised
over them; the log density alone, only where no twin evaluates the proposals) are compiled once per model
structure (:func:`bayescrt.compiled.structure_key`) and kept for the process, the data swapped into their
containers, as :class:`bayescrt.compiled.CompiledModels` does for nutpie.
"""

from __future__ import annotations

import threading
import time as _time
from collections import OrderedDict

import numpy as np

from .errors import SpecError
from .memory import written_once
from .psis import smooth_log_weights

DF = 7  # degrees of freedom of the multivariate t proposal
OVERSAMPLE = 1  # proposals per resampled draw, in each chain (systematic resampling of near-uniform weights keeps most once)
NEWTON_MAX = 50
# a Hessian still counts as taken at the point after a step from it whose Newton decrement (the log density it
# promises) is below this: the step is under 0.0015 of a posterior SD in the Hessian's own metric, over which the
# Hessian changes by far less than the proposal could show (and the weights are exact); without it a mode whose
# last decrement fell just above 1e-10 paid a second Hessian (d gradients) to confirm a step of 1e-11
NEAR_DECREMENT = 1e-6
STALE_STEPS = 15  # Newton steps with a neighbour's Hessian before a fresh one (a grid's neighbours take 5-10)


def pareto_k_threshold(proposals: int) -> float:
    """The largest Pareto ``k`` at which importance sampling with ``proposals`` draws is reliable:
    ``min(1 - 1 / log10(S), 0.7)`` (Vehtari et al. 2024, section 3)."""
    return float(min(1 - 1 / np.log10(proposals), 0.7))


def _flat(point: dict, value_vars) -> np.ndarray:
    return np.concatenate([np.ravel(point[v.name]) for v in value_vars]).astype(float)


def _hessian(logp_grad, x: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The Hessian of the log density at ``x`` by forward differences of the exact gradient from ``at``, the
    gradient at ``x`` (``d`` gradients), symmetrised: error of order 1e-5 of the third derivative, which only the
    proposal sees (the weights are exact)."""
    d = len(x)
    H = np.empty((d, d))
    for i in range(d):
        h = 1e-5 * max(1.0, abs(x[i]))
        e = np.zeros(d)
        e[i] = h
        H[:, i] = (logp_grad(x + e)[1] - at) / h
    return (H + H.T) / 2


def _line_search(logp_grad, x: np.ndarray, lp: float, step: np.ndarray):
    """``(t, log density, gradient)`` at the first of ``x + t step``, t = 1, 1/2, ..., that does not lower the log
    density; None when none down to 1e-8 does."""
    t = 1.0
    while t > 1e-8:
        new_lp, new_g = logp_grad(x + t * step)
        if np.isfinite(new_lp) and new_lp >= lp - 1e-12:
            return t, new_lp, new_g
        t /= 2
    return None


def _proper(H: np.ndarray, where: str = "") -> None:
    try:
        np.linalg.cholesky(-H)
    except np.linalg.LinAlgError:
        raise SpecError(f"sampler='laplace': the log density has no proper mode{where} (its Hessian is not negative "
                        "definite there: a flat or separated direction), so it has no Laplace approximation; use "
                        "sampler='nutpie'") from None


def _newton_from(logp_grad, y0: np.ndarray, H0: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`find_mode` started from a neighbour's mode ``y0`` and Hessian ``H0``: Newton steps with ``H0`` until
    they stall (or ``STALE_STEPS`` of them have not converged), then the Hessian at the point (forward differences)
    and steps with it until converged. A neighbour's Hessian is close, so most steps cost one gradient instead of a
    Hessian's ``d + 1``."""
    y = np.asarray(y0, float).copy()
    lp, g = logp_grad(y)
    H, fresh, kept = H0, False, 0
    for _ in range(NEWTON_MAX):
        try:
            step = np.linalg.solve(-H, g)
        except np.linalg.LinAlgError:
            step = None
        ok = step is not None and np.all(np.isfinite(step)) and g @ step >= 0 and g @ step / 2 >= 1e-10
        near = fresh and ok and g @ step / 2 < NEAR_DECREMENT
        # a Hessian from elsewhere converges linearly: after STALE_STEPS steps still going, a fresh one (2-3 steps)
        found = _line_search(logp_grad, y, lp, step) if ok and (fresh or kept < STALE_STEPS) else None
        if found is None:  # converged with this Hessian, or it no longer leads uphill: a fresh one, once
            if fresh:
                break
            H, fresh, kept = _hessian(logp_grad, y, g), True, 0
            continue
        t, lp, g = found
        y, fresh, kept = y + t * step, near, kept + 1
    if not fresh:
        H = _hessian(logp_grad, y, g)
    _proper(H, " given the hierarchy's scale")
    return y, H, float(lp)


def find_mode(logp_grad, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The mode of the log density by damped Newton steps from ``x0``: ``(mode, Hessian, log density)``.

    Each step solves with the Hessian (differences of the gradient) and halves until the log density
    rises; it stops when half the Newton decrement is below 1e-10. The Hessian is kept from step to step and
    taken afresh only where the kept one stops leading uphill or says the mode is reached, so that the end is
    judged, and the Hessian returned, at the mode (or one step of decrement under ``NEAR_DECREMENT`` from it):
    from a start near the mode (the maximum-likelihood estimate) two Hessians instead of one a step, each ``d``
    gradients (forward differences from the gradient at hand, as :func:`_newton_from`: the weights are exact, and a
    gradient at N = 1,000,000 costs 15-19 ms). A Hessian that is not negative definite at the end means the density
    has no proper mode here: a SpecError."""

    x = np.asarray(x0, float).copy()
    lp, g = logp_grad(x)
    if not np.isfinite(lp):
        raise SpecError("sampler='laplace': the log density is not finite at the model's initial point; use "
                        "sampler='nutpie'")
    H, fresh = _hessian(logp_grad, x, g), True
    for _ in range(NEWTON_MAX):
        try:
            step = np.linalg.solve(-H, g)
        except np.linalg.LinAlgError:
            step = None
        newton = step is not None and np.all(np.isfinite(step)) and g @ step >= 0
        if not newton:
            # not an ascent direction: by a fresh Hessian, a gradient step instead; by a kept one, a fresh Hessian
            step = g / max(1.0, np.linalg.norm(g)) if fresh else None
        found = None if step is None or g @ step / 2 < 1e-10 else _line_search(logp_grad, x, lp, step)
        near = fresh and newton and found is not None and g @ step / 2 < NEAR_DECREMENT
        if found is None:  # converged, or no step rises: judged again by a fresh Hessian, once
            if fresh:
                break
            H, fresh = _hessian(logp_grad, x, g), True
            continue
        t, lp, g = found
        x, fresh = x + t * step, near
    if not fresh:
        H = _hessian(logp_grad, x, g)
    _proper(H)
    return x, H, float(lp)


def _frailty_start(s0: float, y0: np.ndarray, H0: np.ndarray, rest: np.ndarray, effects: np.ndarray,
                   centred: bool) -> tuple | None:
    """``(log SD, its SD, mode, Hessian)``: where a frailty's Laplace marginal peaks, how wide it is, and the rest's
    mode and Hessian carried there, estimated from the conditional mode ``y0`` and Hessian ``H0`` of the rest at the
    log SD ``s0`` (``effects``: the frailty's positions in the flat vector; ``rest``: the flat positions of ``y0``),
    or None where they say nothing.

    Each cluster's effect as a normal observation of it: its likelihood alone gives it the variance ``v_c``
    (the Hessian's diagonal less the prior's), and its estimate freed of the prior's shrinkage is ``b_c / w_c``,
    ``w_c = SD^2 / (SD^2 + v_c)``. The SD that maximises the normal-normal likelihood of those is found by EM
    (``SD^2 = mean(E[b_c^2])``), its log's SD from the Fisher information ``2 sum(w_c^2)``. Correlations between
    the clusters are left out: the estimate only places the grid, whose marginals are the model's own."""
    pos = np.searchsorted(rest, effects)
    neg_diag = -np.diag(H0)[pos]
    e2 = np.exp(2.0 * s0)
    if centred:
        b, lik = y0[pos], neg_diag - 1.0 / e2
    else:
        b, lik = np.sqrt(e2) * y0[pos], (neg_diag - 1.0) / e2
    informed = lik > 0
    if not informed.any() or not np.all(np.isfinite(b)):
        return None
    v = 1.0 / lik[informed]
    raw = b[informed] / (e2 / (e2 + v))  # the effect without the prior's shrinkage
    var = e2
    for _ in range(200):  # EM for the normal-normal model: clusters without information keep their prior's SD^2
        w = var / (var + v)
        new = (np.sum(w * w * raw * raw + w * v) + var * np.count_nonzero(~informed)) / len(b)
        if not np.isfinite(new) or new <= 0:
            return None
        done = abs(new - var) <= 1e-10 * var
        var = new
        if done:
            break
    w = var / (var + v)
    info = 2.0 * np.sum(w * w)
    if var < 1e-12 or not np.isfinite(info) or info <= 0:
        return None
    # the rest's mode and Hessian carried to the new SD, a start for its Newton steps: each effect shrunk by its
    # new w_c (clusters without information at 0); the prior's part of the Hessian at the new SD, the
    # likelihood's the same on the effects' own scale (non-centred: z = b / SD rescales it)
    b1 = np.zeros(len(b))
    b1[informed] = w * raw
    y1, H1 = y0.copy(), H0.copy()
    if centred:
        y1[pos] = b1
        H1[pos, pos] += 1.0 / e2 - 1.0 / var
    else:
        r = np.sqrt(var / e2)  # the new SD over the old
        y1[pos] = b1 / np.sqrt(var)
        H1[pos, :] *= r
        H1[:, pos] *= r
        H1[pos, pos] += r * r - 1.0  # the prior's -1 back in place of its rescaled -r^2
    return 0.5 * float(np.log(var)), float(min(0.5, 1.0 / np.sqrt(info))), y1, H1


INTEGRATED_SCALES = ("frailty_sd", "rw_sd")  # one scale of a hierarchy, integrated over on a grid (below)
OTHER_SCALES = ("study_sd", "tau")  # between-study SDs: not integrated over, refused beside one that is
GRID_DROP = 4.0  # the grid of the scale reaches where its Laplace marginal is exp(-GRID_DROP) of its peak (3 SDs
# of a normal marginal at a spacing of one); beyond, exponential tails (_IntegratedProposal)


def _times_transpose(A: np.ndarray, L: np.ndarray) -> np.ndarray:
    """``A @ L.T`` by numpy's own loops, not BLAS: a BLAS product split over its threads sums in another order, and
    the proposals (so the draws) would depend on the machine's thread count in the last bit."""
    return np.einsum("sj,ij->si", A, L, optimize=False)


def _scale_factor(H: np.ndarray) -> np.ndarray:
    """The Cholesky factor of the t's scale matrix ``inv(-H)`` (symmetrised)."""
    scale = np.linalg.inv(-H)
    return np.linalg.cholesky((scale + scale.T) / 2)


def _t_steps(rng, S: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``S`` draws of a standard multivariate t (``DF`` degrees of freedom, ``d`` coordinates), to be scaled by a
    Cholesky factor, and the log of its density kernel at each (the normalising constant left out)."""
    z = rng.standard_normal((S, d))
    g = rng.chisquare(DF, S) / DF
    maha = np.sum(z * z, axis=1) / g
    return z / np.sqrt(g)[:, None], -0.5 * (DF + d) * np.log1p(maha / DF)


class _TProposal:
    """The multivariate t at the mode, ``scale = inv(-H)``."""

    def __init__(self, mode: np.ndarray, H: np.ndarray):
        self.mode, self.L = mode, _scale_factor(H)
        self.description = f"multivariate t, df {DF}"
        self.grid = None

    def draw(self, rng, S: int) -> tuple[np.ndarray, np.ndarray]:
        """``S`` proposals and their log density up to a constant."""
        steps, log_kernel = _t_steps(rng, S, len(self.mode))
        return self.mode + _times_transpose(steps, self.L), log_kernel


class _IntegratedProposal:
    """A hierarchy's scale (coordinate ``h``, a log SD) from its Laplace marginal on a grid, the rest from the t at
    their mode given it (the integrated nested Laplace approximation of Rue, Martino and Chopin 2009, used here as
    an importance proposal, so that the weights correct what it gets wrong).

    A frailty's or a random walk's SD has no joint mode to expand about (the density rises without bound as the SD
    and the effects shrink together), but given the SD the rest is close to normal. For each grid value ``s`` of the
    log SD: the conditional mode ``y(s)`` and Hessian ``H(s)`` of the other coordinates (damped Newton, warm-started
    from the neighbour), and the marginal ``log p(s) ~ log p(y(s), s) - log det(-H(s)) / 2``. The grid is spaced by
    about the marginal's SD at its peak (after a frailty start, the estimate's: a third to 1.5 times it) and runs out
    on both sides until the marginal has fallen by ``GRID_DROP`` below its highest point. A frailty's
    (``effects``: its positions in the flat vector, centred or not) is placed by
    :func:`_frailty_start` from the rest's mode at the first scale tried: three points about the estimate, kept when
    a parabola through them agrees with its width (10 marginals at N = 8,880 and 50 clusters, where the climb below
    took 15-16); any other scale's, or where the estimate is off, by a climb in steps of 0.5 to a peak and a parabola
    through it and its neighbours. The proposal: ``s`` from the density that is log-linear between grid
    points through those marginals and falls exponentially beyond the ends (exact to draw from and to evaluate);
    given ``s``, the rest from the t centred on the straight line between the two modes on either side (beyond an
    end, at the end's mode), with the nearer grid point's scale."""

    def __init__(self, logp_grad, x0: np.ndarray, h: int, name: str, effects=None):
        self.h, self.name = h, name
        d = len(x0)
        self.rest = np.flatnonzero(np.arange(d) != h)

        def at(s, start):
            def cond(y):
                lp, g = logp_grad(self._join(y, np.array([s]))[0])
                return lp, g[self.rest]

            y, H, lp = find_mode(cond, start) if isinstance(start, np.ndarray) else _newton_from(cond, *start[:2])
            sign, logdet = np.linalg.slogdet(-H)
            return y, H, lp - 0.5 * logdet

        points = {}

        def marginal(s, start, soft=False):
            """``(mode, Hessian, log marginal)`` at ``s``, from ``start``: a point, or a neighbour's result. Where the
            rest has no proper mode given ``s``: with ``soft``, a log marginal of -inf (a direction the climb does
            not take), else the SpecError, naming the scale and its value."""
            if s not in points:
                try:
                    points[s] = at(s, start)
                except SpecError as err:
                    if soft:
                        return None, None, -np.inf
                    raise SpecError(f"{err} (at {name} = {np.exp(s):.3g})") from None
            return points[s]

        # the climb starts from the model's initial point or, where the rest has no proper mode there (a vague
        # prior puts it at a scale of thousands, where the likelihood is flat), from a few plausible scales
        here = None
        for s in (float(x0[h]), np.log(0.5), np.log(0.1), np.log(2.0)):
            here = marginal(s, x0[self.rest], soft=True)
            if np.isfinite(here[2]):
                break
        if not np.isfinite(here[2]):
            marginal(float(x0[h]), x0[self.rest])  # raises, naming the scale
        start = None if effects is None else _frailty_start(s, here[0], here[1], self.rest, *effects)
        centre = None
        if start is not None:  # three points about the estimate, spaced by its SD: a parabola through them
            s1, delta = start[:2]
            mid = marginal(s1, start[2:], soft=True)
            failed = (None, None, -np.inf)  # no proper mode at the estimate: its neighbours have no start either
            lo, hi = ((marginal(s1 - delta, mid, soft=True), marginal(s1 + delta, mid, soft=True))
                      if np.isfinite(mid[2]) else (failed, failed))
            a, b, c = lo[2], mid[2], hi[2]
            if np.all(np.isfinite([a, b, c])) and a - 2 * b + c < 0:
                sd = delta / np.sqrt(-(a - 2 * b + c))
                peak = s1 + 0.5 * delta * (a - c) / (a - 2 * b + c)
                # the estimate spaced the grid well (its SD within a factor of the marginal's, the peak near): the
                # grid goes on from these three points
                if delta / 1.5 <= sd <= 3 * delta and abs(peak - s1) <= 3 * delta:
                    centre, sd, here = s1, delta, mid
            if centre is None:  # the climb, from the best of them (where one has a proper mode)
                best = max(((s1 - delta, lo), (s1, mid), (s1 + delta, hi)), key=lambda p: p[1][2])
                if np.isfinite(best[1][2]):
                    s, here = best
        if centre is None:
            centre, sd, here = self._climb(marginal, s, here, name)
        found = {centre: here}
        # out from the centre on both sides at the spacing, until each end lies GRID_DROP below the highest point
        ends = {1: centre, -1: centre}
        for _ in range(4):
            top = max(v[2] for v in found.values())
            for direction in (1, -1):
                g_s, prev = ends[direction], found[ends[direction]]
                for _ in range(60):
                    if prev[2] < top - GRID_DROP:
                        break
                    g_s = g_s + direction * sd
                    prev = found[g_s] = marginal(g_s, prev)
                    top = max(top, prev[2])
                else:
                    raise SpecError(f"sampler='laplace': the Laplace marginal of {name} does not fall off within 60 "
                                    "of its SDs from its peak; use sampler='nutpie'")
                ends[direction] = g_s
            if all(found[ends[k]][2] < top - GRID_DROP for k in (1, -1)):
                break
        grid = np.sort(np.array(list(found)))
        self._finish(grid, found, name)

    @staticmethod
    def _climb(marginal, s, here, name):
        """``(centre, spacing, its point)`` of the grid from the generic climb: steps of 0.5 (log SD) from ``s`` to a
        peak of the marginal, then a parabola through it and its neighbours."""
        step = 0.5
        for _ in range(40):
            up, down = marginal(s + step, here, soft=True), marginal(s - step, here, soft=True)
            if up[2] > here[2] and up[2] >= down[2]:
                s, here = s + step, up
            elif down[2] > here[2]:
                s, here = s - step, down
            else:
                break
        else:
            raise SpecError(f"sampler='laplace': the Laplace marginal of {name} has no peak within 20 units of its log "
                            "from the initial point; use sampler='nutpie'")
        a, b, c = marginal(s - step, here, soft=True)[2], here[2], marginal(s + step, here, soft=True)[2]
        if np.isfinite(a) and np.isfinite(c) and a - 2 * b + c < 0:
            sd = min(step, step / np.sqrt(-(a - 2 * b + c)))
            peak = s + 0.5 * step * (a - c) / (a - 2 * b + c)
        else:  # a neighbour without a proper mode: no parabola, a finer grid from the best point
            sd, peak = step / 2, s
        return peak, sd, marginal(peak, here)

    def _finish(self, grid: np.ndarray, found: dict, name: str) -> None:
        """The proposal from the marginal's grid: its modes, scales and the density of the scale's log."""
        self.grid = grid
        self.modes = np.array([found[v][0] for v in grid])
        self.log_marginal = np.array([found[v][2] for v in grid])
        self.chol, self.half_logdet = [], []
        for v in grid:
            L = _scale_factor(found[v][1])
            self.chol.append(L)
            self.half_logdet.append(float(np.sum(np.log(np.diag(L)))))
        self.half_logdet = np.array(self.half_logdet)
        # the log-linear density of s between grid points: the mass of each interval
        lm = self.log_marginal - self.log_marginal.max()
        a, b = lm[:-1], lm[1:]
        width = np.diff(grid)
        slope = (b - a) / width
        flat = np.abs(b - a) < 1e-12
        mass = np.where(flat, width * np.exp(a), (np.exp(b) - np.exp(a)) / np.where(flat, 1.0, slope))
        # beyond each end it goes on falling exponentially, at the shallower of the last interval's slope and that of
        # the straight line from the grid's highest point to the end (the line is the shallower where the marginal is
        # concave, the last interval where it flattens out, as a frailty's does towards an SD of 0, where the prior
        # alone is left), and below the grid at most at slope 1: every value of the scale can be proposed, with
        # tails as heavy as the target's or heavier, as an importance proposal's should be. The line's slope is
        # positive (each end lies GRID_DROP below the grid's highest point); an interval's counts only where it is
        top = int(np.argmax(lm))
        line = np.array([-lm[0] / (grid[top] - grid[0]), -lm[-1] / (grid[-1] - grid[top])])
        last = np.array([slope[0], -slope[-1]])
        self._tail = np.where(last > 0, np.minimum(line, last), line)
        # towards an SD of 0 the likelihood flattens and the prior of the SD (finite at 0: HalfNormal, HalfCauchy,
        # Exponential) leaves its log the density e^s, which no steeper tail may undercut
        self._tail[0] = min(self._tail[0], 1.0)
        tail_mass = np.exp(lm[[0, -1]]) / self._tail
        pieces = np.concatenate([[tail_mass[0]], mass, [tail_mass[1]]])
        self._a, self._slope, self._flat, self._mass = a, slope, flat, pieces / pieces.sum()
        self._log_norm = float(np.log(pieces.sum()))
        self._ends = lm[[0, -1]]
        self.mode = self._join(self.modes[np.argmax(self.log_marginal)], grid[[np.argmax(self.log_marginal)]])[0]
        self.description = (f"{name} (log) from its Laplace marginal on a grid of {len(grid)} points, the rest from a "
                            f"multivariate t, df {DF}, at their mode given it")

    def _join(self, y: np.ndarray, s: np.ndarray) -> np.ndarray:
        y = np.atleast_2d(y)
        x = np.empty((len(y), len(self.rest) + 1))
        x[:, self.rest] = y
        x[:, self.h] = s
        return x

    def scale_log_density(self, s) -> np.ndarray:
        """The proposal's density of the scale's log at ``s`` (normalised), as a log: log-linear between grid points
        through their log marginals, exponential beyond the ends."""
        s, grid = np.asarray(s, float), self.grid
        cell = np.clip(np.searchsorted(grid, s, side="right") - 1, 0, len(grid) - 2)
        tails = np.where(s < grid[0], self._ends[0] - self._tail[0] * (grid[0] - s),
                         self._ends[1] - self._tail[1] * (s - grid[-1]))
        inside = (s >= grid[0]) & (s <= grid[-1])
        return np.where(inside, self._a[cell] + self._slope[cell] * (s - grid[cell]), tails) - self._log_norm

    def draw(self, rng, S: int) -> tuple[np.ndarray, np.ndarray]:
        grid, d = self.grid, len(self.rest)
        piece = rng.choice(len(self._mass), size=S, p=self._mass)  # 0: below the grid, last: above it
        u = rng.random(S)
        cell = np.clip(piece - 1, 0, len(grid) - 2)  # the interval, or the one at the end the tail leaves from
        inside = (piece >= 1) & (piece <= len(grid) - 1)
        slope, w = self._slope[cell], np.diff(grid)[cell]
        # inverse of the cell's CDF: exp(a + slope t) on 0 <= t <= w
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            t = np.where(self._flat[cell], u * w, np.log1p(u * np.expm1(slope * w)) / slope)
        t = np.clip(t, 0.0, w)
        # a tail: how far beyond its end, exponential at the tail's slope (1 - u in (0, 1]: never log(0))
        side = (piece == len(self._mass) - 1).astype(int)
        beyond = -np.log1p(-u) / self._tail[side]
        s = np.where(inside, grid[cell] + t, np.where(side == 1, grid[-1] + beyond, grid[0] - beyond))
        log_q_s = self.scale_log_density(s)
        # the rest's centre on the straight line between the interval's two modes, its scale the nearer grid point's;
        # in a tail the end's own mode: a line carried on past the end would leave where the rest's conditional
        # posterior goes (towards an SD of 0, back to the effects' prior), and the weights' tail (k) showed it
        frac = np.clip((s - grid[cell]) / w, 0.0, 1.0)
        centre = self.modes[cell] + frac[:, None] * (self.modes[cell + 1] - self.modes[cell])
        near = np.where(frac < 0.5, cell, cell + 1)
        steps, log_kernel = _t_steps(rng, S, d)
        y = np.empty((S, d))
        for j in np.unique(near):
            rows = near == j
            y[rows] = centre[rows] + _times_transpose(steps[rows], self.chol[j])
        return self._join(y, s), log_q_s - self.half_logdet[near] + log_kernel


def systematic_resample(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices drawn in proportion to ``weights`` by systematic resampling (one uniform, ``n`` evenly
    spaced points on the cumulative weights): each index appears ``floor(n w)`` or ``ceil(n w)`` times."""
    cum = np.cumsum(weights / weights.sum())
    cum[-1] = 1.0
    return np.searchsorted(cum, (rng.random() + np.arange(n)) / n, side="right")


_FUNCTIONS: OrderedDict = OrderedDict()  # structure key -> _Functions, least recently used first
_FUNCTIONS_LOCK = threading.Lock()
MAX_STRUCTURES = 16


class _Functions:
    """The compiled functions of one model structure and the data containers they read."""

    def __init__(self, model):
        from pytensor.compile.sharedvalue import SharedVariable

        # the initial point's function, kept: a model of this structure has its data and prior values in the same
        # containers, so after load() it gives that model's initial point (compiling it took 17-34 ms of
        # each fit, under a profiler)
        self._initial = model._make_initial_point()
        first = self._initial(None)
        self.shapes = shapes = [(v.name, np.shape(first[v.name])) for v in model.value_vars]
        self.vgf = model.logp_dlogp_function(ravel_inputs=True)
        self.vgf.set_extra_values({})
        self._logp_only, self._model = None, model
        # the free variables on their own scale and the deterministics, as graphs of the value variables (not of
        # the random variables, which would be drawn from their priors), with the free variables' own terms of the
        # log density (priors and Jacobians, no likelihood)
        wanted = set(_posterior_names(model))
        graphs = [v for v in model.unobserved_value_vars if v.name in wanted]
        self.names = [v.name for v in graphs]
        self.batch, self.batched = _batch_function(model, graphs, shapes)
        self.shared = {v.name: v for v in model.named_vars.values() if isinstance(v, SharedVariable)}
        self.lock = threading.Lock()  # the containers hold one model's data at a time

    @property
    def logp_only(self):
        """The log density without its gradient, compiled on first use (only proposals that the family's twin
        cannot evaluate need it)."""
        if self._logp_only is None:
            self._logp_only = self._model.logp_dlogp_function(ravel_inputs=True, compute_grads=False)
            self._logp_only.set_extra_values({})
        return self._logp_only

    def load(self, model) -> None:
        """Put ``model``'s data and prior values into the containers the functions read."""
        from .compiled import data_values

        for name, value in data_values(model).items():
            self.shared[name].set_value(value)

    def initial_point(self) -> dict:
        """The initial point (PyMC's, no jitter) of the model whose values are loaded: value variable -> array."""
        return {k: np.asarray(v) for k, v in self._initial(None).items()}


def _batch_function(model, graphs, shapes) -> tuple:
    """``(fn, batched)``: ``fn(xs)`` gives ``[prior terms (rows,), *graphs (rows, ...)]`` at the rows of ``xs``
    (proposals on the sampler's flat space). One call for a batch: the graphs are vectorised over a leading axis
    (pytensor's ``vectorize_graph``), where a call per proposal cost 20-60 microseconds of pytensor's own (0.4 s of
    a piecewise fit's 12,000 calls). A graph that does not vectorise is compiled per point and called row by row
    (``batched`` False); ``tests/test_laplace.py`` holds the two to each other for every family."""
    import pytensor.tensor as pt
    from pymc.pytensorf import compile as compile_fn
    from pytensor.compile.mode import Mode
    from pytensor.compile.ops import ViewOp
    from pytensor.graph.replace import vectorize_graph

    prior = model.logp(vars=model.free_RVs, jacobian=True, sum=True)
    d = sum(int(np.prod(shape)) for _, shape in shapes)
    flat = pt.tensor("proposals", dtype="float64", shape=(None, d))  # a static width: half the vectorising time
    where = _positions(shapes)
    replace = {}
    for v, (name, shape) in zip(model.value_vars, shapes):
        replace[v] = flat[:, where[name]].reshape((flat.shape[0], *shape))
    # a deterministic is a view of its graph (PyMC's Deterministic): vectorised, a ViewOp becomes a Blockwise that
    # loops over the batch's rows in Python (half of the 21-50 ms the posterior's variables took); its graph is the
    # same values
    graphs = [g.owner.inputs[0] if g.owner is not None and isinstance(g.owner.op, ViewOp) else g for g in graphs]
    try:
        outs = vectorize_graph([prior, *graphs], replace=replace)
        # pytensor's Python linker with its quick rewrites: no C module to build on a machine's first fit, and a
        # call per batch of 256 proposals costs under a millisecond
        mode = Mode(linker="py", optimizer="fast_compile")
        return compile_fn([flat], outs, on_unused_input="ignore", mode=mode), True
    except NotImplementedError:
        pass
    one = compile_fn(model.value_vars, [prior, *graphs], on_unused_input="ignore")

    def by_rows(xs):
        rows = [one(*_unravel(x, shapes).values()) for x in xs]
        return [np.stack([np.asarray(r[i]) for r in rows]) for i in range(len(rows[0]))]

    return by_rows, False


def _functions(model) -> tuple[_Functions, bool]:
    """The compiled functions for ``model``'s structure, compiled now (True) or reused (False)."""
    from .compiled import structure_key

    key = structure_key(model)
    with _FUNCTIONS_LOCK:
        if key in _FUNCTIONS:
            _FUNCTIONS.move_to_end(key)
            return _FUNCTIONS[key], False
    fns = _Functions(model)
    with _FUNCTIONS_LOCK:
        _FUNCTIONS[key] = fns
        while len(_FUNCTIONS) > MAX_STRUCTURES:
            _FUNCTIONS.popitem(last=False)
    return fns, True


def clear() -> None:
    """Forget every compiled structure (the next fit of each compiles afresh)."""
    with _FUNCTIONS_LOCK:
        _FUNCTIONS.clear()


def _posterior_names(model) -> list[str]:
    return [v.name for v in model.free_RVs] + [v.name for v in model.deterministics]


def _dims(model, name: str, shape: tuple) -> list[str]:
    dims = model.named_vars_to_dims.get(name)
    if dims and len(dims) == len(shape):
        return list(dims)
    return [f"{name}_dim_{k}" for k in range(len(shape))]


def sample_laplace(model, *, draws: int, chains: int, seed: int, progress: bool = False, pointwise=None,
                   keep_pointwise: bool = False, start_at_zero=()) -> tuple:
    """Draws of ``model``'s posterior by Laplace importance sampling (module docstring): ``(DataTree with posterior
    and sample_stats, info)``. Each chain has its own seed from ``seed``; the same seed gives the same draws.

    ``pointwise(post, terms)``: the log-likelihood terms of a batch of draws, ``post`` the posterior's variables with
    one leading axis of draws, (draws, terms); with ``terms=False`` their sum per draw, (draws,). With
    ``keep_pointwise`` the kept draws' terms come back as the tree's ``pointwise`` group, variable ``terms``
    (chain, draw, term). ``start_at_zero``: value variables whose mode search starts at 0 instead of the model's
    initial point (the preconditioned coefficients, whose 0 is the MLE)."""
    t0 = _time.perf_counter()
    _scales(model)  # a model this sampler refuses, before anything is compiled for it
    fns, new = _functions(model)
    t1 = _time.perf_counter()
    with fns.lock:
        fns.load(model)
        ip = fns.initial_point()
        for name in start_at_zero:
            ip[name] = np.zeros_like(ip[name])
        x0 = _flat(ip, model.value_vars)
        integrate = _integrated_scale(model, fns.shapes)
        tree, info = _sample(model, fns, x0, draws=draws, chains=chains, seed=seed, progress=progress,
                             pointwise=pointwise, keep_pointwise=keep_pointwise, integrate=integrate)
    info.update(compile_seconds=round(t1 - t0, 3), sampling_seconds=round(_time.perf_counter() - t1, 3),
                compiled="new" if new else "reused")
    return tree, info


def _scales(model) -> list:
    """The hierarchy scale the proposal integrates over (a list of one), or none; a SpecError for a model with one
    of ``INTEGRATED_SCALES`` and any other scale (a second one, a between-study SD): the grid integrates over one."""
    scales = [rv for rv in model.free_RVs if rv.name in INTEGRATED_SCALES]
    others = [rv for rv in model.free_RVs if rv.name in OTHER_SCALES]
    if len(scales) > 1 or (scales and others):
        both = scales + others
        raise SpecError(f"sampler='laplace' integrates over one hierarchy scale on a grid; this model has "
                        f"{len(both)} ({', '.join(rv.name for rv in both)}); use sampler='nutpie'")
    return scales


def _integrated_scale(model, shapes) -> tuple | None:
    """``(position in the flat vector, name, effects)`` of the one hierarchy scale the proposal integrates over, or
    None; ``effects``: for a frailty's SD, ``(positions of its effects in the flat vector, centred)``, else None.

    A model with one of ``INTEGRATED_SCALES`` and any other scale (a second one, a between-study SD) is refused: the
    grid integrates over one. A between-study SD alone keeps the t at the joint mode, whose gates judge it."""
    scales = _scales(model)
    if not scales:
        return None
    from pymc.logprob.transforms import LogTransform

    value = model.rvs_to_values[scales[0]].name
    where = _positions(shapes)
    if value not in where:
        return None
    h = where[value].start
    # a frailty's effects on the flat vector (non-centred: their z; centred: themselves), for the climb's start
    # (_IntegratedProposal): only where the scale's value is its log
    effects = None
    if scales[0].name == "frailty_sd" and isinstance(model.rvs_to_transforms.get(scales[0]), LogTransform):
        for var, centred in (("frailty_z", False), ("frailty", True)):
            rv = model.named_vars.get(var)
            if rv is not None and rv in model.rvs_to_values and model.rvs_to_values[rv].name in where:
                at = where[model.rvs_to_values[rv].name]
                effects = (np.arange(at.start, at.stop), centred)
                break
    return h, scales[0].name, effects


def _positions(shapes) -> dict:
    """Each value variable's slice of the flat vector, from ``shapes`` (``(name, shape)`` in the vector's order)."""
    out, at = {}, 0
    for name, shape in shapes:
        size = int(np.prod(shape))
        out[name] = slice(at, at + size)
        at += size
    return out


def _unravel(x: np.ndarray, shapes) -> dict:
    where = _positions(shapes)
    return {name: x[where[name]].reshape(shape) for name, shape in shapes}


def _variables(fns: "_Functions", xs: np.ndarray, prior: bool = False):
    """The posterior's variables at each row of ``xs``: name -> (rows, ...); with ``prior``, ``(variables, the free
    variables' own terms of the log density at each row)``."""
    out = fns.batch(np.ascontiguousarray(xs, dtype=float))
    # C order, as the per-point calls stacked them (and as the kernels that read them were compiled for)
    values = {n: np.ascontiguousarray(v) for n, v in zip(fns.names, out[1:])}
    return (values, np.asarray(out[0], float)) if prior else values


class _Evaluator:
    """The log density of a batch of proposals: the model's own function one at a time, or the family's pointwise
    twin in batches plus the priors' terms (module docstring), with the terms kept for the chain."""

    BATCH = 256  # proposals per call of the twin (which bounds its own memory: fused.partial_loglik_events)

    def __init__(self, fns, pointwise):
        self.fns, self.pointwise = fns, pointwise

    def model_logp(self, x: np.ndarray) -> float:
        out = self.fns.logp_only(x)
        return float(out[0] if isinstance(out, (tuple, list)) else out)

    def agrees(self, xs: np.ndarray) -> bool:
        """Whether the twin and the model's log density differ by one constant at the points ``xs`` (the model's
        by the function the mode search compiled, with its gradient: no compilation of another for four points)."""
        lp_twin, _ = self.twin(xs, keep=False)
        diff = lp_twin - np.array([float(self.fns.vgf(x)[0]) for x in xs])
        return bool(np.all(np.isfinite(diff)) and np.ptp(diff) <= 1e-7 * max(1.0, np.max(np.abs(lp_twin))))

    def twin(self, xs: np.ndarray, keep: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``(log density, terms)`` of the proposals ``xs``; without ``keep`` the twin sums the terms itself."""
        post, prior = _variables(self.fns, xs, prior=True)
        if not keep:
            return prior + np.asarray(self.pointwise(post, terms=False), float), None
        terms = np.asarray(self.pointwise(post, terms=True), float)
        return prior + terms.sum(axis=1), terms

    def __call__(self, xs: np.ndarray, keep: bool, bar, out=None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(log density, terms)`` of the proposals ``xs``, the terms (with ``keep``) into ``out(shape)``, an array
        of that shape (:class:`_KeptTerms`)."""
        lp = np.empty(len(xs))
        if self.pointwise is None:
            for s, x in enumerate(xs):
                lp[s] = self.model_logp(x)
                if s % 100 == 99:
                    bar.advance(100)
            return lp, None
        kept = None
        for a in range(0, len(xs), self.BATCH):
            lp[a:a + self.BATCH], terms = self.twin(xs[a:a + self.BATCH], keep)
            if keep:
                if kept is None:
                    kept = out((len(xs), terms.shape[1]))
                kept[a:a + len(terms)] = terms
            bar.advance(min(self.BATCH, len(xs) - a))
        return lp, kept


class _KeptTerms:
    """The kept draws' terms of every chain, ``(chains, draws, terms)``: the stored log-likelihood.

    A chain's proposals are evaluated straight into its rows of that array, and its resampled draws are then
    gathered in place (:func:`take_rows_in_place`), when there are as many proposals as draws; otherwise into one
    buffer for every chain, from which the kept rows are copied. The array is fresh memory, whose pages the system
    supplies on first touch (0.3-0.6 s for the 133 MB at N = 8,880 on a virtual machine through numpy's allocation):
    written once, not through a chain's buffer first, and in small pages (:mod:`bayescrt.memory`)."""

    def __init__(self, chains: int, draws: int):
        self.chains, self.draws = chains, draws
        self.array = self._buffer = None

    def rows(self, c: int, shape: tuple) -> np.ndarray:
        """Where chain ``c``'s proposals' terms go, ``shape`` = (proposals, terms)."""
        if self.array is None:
            self.array = written_once((self.chains, self.draws, shape[1]))
        if shape == self.array.shape[1:]:
            return self.array[c]
        if self._buffer is None or self._buffer.shape != shape:
            self._buffer = np.empty(shape)
        return self._buffer

    def keep(self, c: int, terms: np.ndarray, idx: np.ndarray) -> None:
        """Chain ``c``'s kept draws: the rows ``idx`` of its proposals' ``terms``."""
        if np.may_share_memory(terms, self.array):  # this chain's rows of the array (rows())
            take_rows_in_place(terms, idx)
        else:
            np.take(terms, idx, axis=0, out=self.array[c])


def take_rows_in_place(a: np.ndarray, idx: np.ndarray) -> None:
    """``a[:] = a[idx]`` for a 2-D array and row numbers ``idx`` (as many as ``a`` has rows; repeats allowed), with one
    row of extra memory: each row read once or more is moved to its first destination by the cycles of a
    permutation (the unread rows fill the destinations left over), then copied to its other destinations."""
    if np.ndim(a) != 2:
        raise ValueError(f"take_rows_in_place: a has {np.ndim(a)} dimensions; give a 2-D array (rows x columns)")
    n = len(a)
    idx = np.asarray(idx)
    if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"take_rows_in_place: idx has shape {idx.shape} and dtype {idx.dtype}, a has {n} rows; give "
                         "one integer row number a row")
    if n and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"take_rows_in_place: row numbers run from {idx.min()} to {idx.max()}; give 0 to {n - 1}")
    idx = idx.astype(np.int64, copy=False)
    order = np.argsort(idx, kind="stable")
    first = np.ones(n, bool)
    first[1:] = idx[order[1:]] != idx[order[:-1]]
    dest = order[first]  # the first destination of each row read, in row order
    read = idx[dest]
    src = np.empty(n, np.int64)  # the permutation: destination -> the row it takes
    src[dest] = read
    unread = np.ones(n, bool)
    unread[read] = False
    free = np.ones(n, bool)
    free[dest] = False
    src[free] = np.flatnonzero(unread)
    done = np.zeros(n, bool)
    row = np.empty(a.shape[1], a.dtype)
    for start in range(n):
        if done[start] or src[start] == start:
            continue
        row[:] = a[start]
        j = start
        while src[j] != start:
            a[j] = a[src[j]]
            done[j] = True
            j = src[j]
        a[j] = row
        done[j] = True
    first_dest = np.empty(n, np.int64)
    first_dest[read] = dest
    for t in order[~first]:  # the other destinations of rows read more than once
        a[t] = a[first_dest[idx[t]]]


def _sample(model, fns: _Functions, x0, *, draws, chains, seed, progress, pointwise=None,
            keep_pointwise=False, integrate=None) -> tuple:
    import pytensor
    import xarray as xr

    from .progress import Bar

    vgf = fns.vgf
    names = fns.names
    t1 = _time.perf_counter()

    def logp_grad(x):
        lp, g = vgf(x)
        return float(lp), np.asarray(g, float)

    if integrate is None:
        mode, H, lp_mode = find_mode(logp_grad, x0)
        proposal = _TProposal(mode, H)
    else:
        proposal = _IntegratedProposal(logp_grad, x0, *integrate)
        mode = proposal.mode
        lp_mode = logp_grad(mode)[0]
    d = len(mode)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(chains)]
    S = OVERSAMPLE * draws
    evaluate = _Evaluator(fns, pointwise)
    kept_x = np.empty((chains, draws, d))
    kept_lp = np.empty((chains, draws))
    keep = keep_pointwise and pointwise is not None
    kept = _KeptTerms(chains, draws)
    k_hat, ess = np.empty(chains), np.empty(chains)
    with Bar("Laplace importance sampling", "proposals", chains * S, enabled=progress) as bar:
        for c, sd in enumerate(seeds):
            rng = np.random.default_rng(sd)
            x, log_q = proposal.draw(rng, S)  # log_q up to a constant, which the weights' scale absorbs
            if c == 0 and evaluate.pointwise is not None and not evaluate.agrees(np.vstack([mode, x[:3]])):
                evaluate.pointwise, keep = None, False  # the twin is not this model's: the model's own logp
            lp, terms = evaluate(x, keep, bar, out=lambda shape: kept.rows(c, shape))
            bar.set((c + 1) * S)
            lw = np.where(np.isfinite(lp), lp - log_q, -np.inf)
            if not np.isfinite(lw).any():
                raise SpecError("sampler='laplace': no proposal has a finite log density; use sampler='nutpie'")
            smoothed, k = smooth_log_weights(lw)
            w = np.exp(smoothed)
            k_hat[c], ess[c] = k, 1.0 / np.sum(w ** 2)
            idx = rng.permutation(systematic_resample(w, draws, rng))
            kept_x[c], kept_lp[c] = x[idx], lp[idx]
            if keep:
                kept.keep(c, terms, idx)
    t2 = _time.perf_counter()
    # the posterior's variables (free variables on their own scale, deterministics) at every kept draw
    values = _variables(fns, kept_x.reshape(chains * draws, d))
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    data_vars = {}
    for n in names:
        arr = values[n].reshape(chains, draws, *values[n].shape[1:])
        dims = _dims(model, n, arr.shape[2:])
        for dim, size in zip(dims, arr.shape[2:]):
            coords.setdefault(dim, list(model.coords[dim]) if dim in model.coords and model.coords[dim] is not None
                              and len(model.coords[dim]) == size else np.arange(size))
        data_vars[n] = (("chain", "draw", *dims), arr)
    posterior = xr.Dataset(data_vars, coords=coords)
    stats = xr.Dataset({"logp": (("chain", "draw"), kept_lp), "pareto_k": (("chain",), k_hat),
                        "importance_ess": (("chain",), ess)}, coords={"chain": coords["chain"], "draw": coords["draw"]},
                       attrs={"proposals_per_chain": S, "sampler": "laplace"})
    groups = {"posterior": posterior, "sample_stats": stats}
    if kept.array is not None:  # allocated by the first chain that keeps its terms
        groups["pointwise"] = xr.Dataset({"terms": (("chain", "draw", "term"), kept.array)},
                                         coords={"chain": coords["chain"], "draw": coords["draw"]})
    tree = xr.DataTree.from_dict(groups)
    info = {"chain_seeds": seeds, "proposals_per_chain": S, "proposal": proposal.description,
            "pareto_k": [round(float(v), 4) for v in k_hat], "importance_ess": [round(float(v), 1) for v in ess],
            "mode_log_density": lp_mode, "evaluation_seconds": round(t2 - t1, 3),
            **({} if proposal.grid is None else {"grid": [round(float(v), 4) for v in proposal.grid]}),
            "evaluated_by": "the model's log density" if evaluate.pointwise is None else "the family's pointwise twin",
            "pytensor_mode": str(pytensor.config.mode)}
    return tree, info
