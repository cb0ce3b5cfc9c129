"""Elo ratings from pairwise votes by maximum likelihood (Bradley–Terry), as GPTEval3D computes them.

Not sequential Elo updates: all votes of a criterion are fitted at once. With A[i, j] the number of times
method i beat method j (a draw counts as one win for *both* sides), the ratings R minimise

    L(R) = Σ_{i,j} A[i, j] · log(1 + 10^((R_j − R_i) / 400)),

the negative log-likelihood of P(i beats j) = 1 / (1 + 10^((R_j − R_i) / 400)). L only depends on rating
differences, so one rating is pinned:

- tournament mode: an anchor method is fixed at 1000 and all others are fitted;
- new-method mode: methods with known ratings are frozen at them and only the new methods are fitted.

Optimiser: the reference runs Adam (lr 0.1, 10,000 iterations) from 1000. L is convex, so we minimise the
same objective exactly with scipy's L-BFGS and the analytic gradient (a few milliseconds for a handful of
methods), in units of 400 Elo for good conditioning. When a method wins (or loses) every one of its votes
the maximum-likelihood rating is infinite; the reference's Adam stops after its iteration budget, here a
weak Gaussian prior `prior_weight · Σ ((R_i − 1000) / 400)²` on the fitted ratings keeps them finite
(at the default, 10 straight wins put a method about 1050 Elo above its opponent, 100 about 1400). Its
effect on ratings backed by tens of votes per pair is under one Elo point; `prior_weight=0` gives the pure
maximum-likelihood objective.

Confidence intervals: percentile bootstrap over comparisons (all votes of a resampled comparison, every
criterion and completion, move together), refitting each replicate.

Votes table (CSV) columns, one row per vote per criterion:
    comparison_id  which comparison (request) the vote came from; the bootstrap resamples these
    asset_id       the conditioning image / prompt both assets were generated from
    method_a       the first method of the scheduled pair
    method_b       the second method of the scheduled pair
    criterion      criterion key, e.g. "alignment"
    vote           1 = method_a better, 2 = method_b better, 3 = cannot decide (a draw); the left/right swap
                   of the shown image is already undone
    winner         the better method's name, or "draw" (redundant with `vote`, for reading)
    completion     index of the judge's completion within the request (each completion is a vote)
    swapped        True when method_a was shown on the right
Only method_a, method_b, criterion and vote (or winner) are required to fit ratings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ..results import markdown_rows

INITIAL_RATING = 1000.0  # every rating starts here; the anchor stays here
ELO_SCALE = 400.0  # a 400-point gap means 10:1 odds
DEFAULT_PRIOR_WEIGHT = 1e-2  # keeps all-win/all-loss ratings finite; see the module docstring
DRAW = "draw"

VOTE_COLUMNS = (
    "comparison_id",
    "asset_id",
    "method_a",
    "method_b",
    "criterion",
    "vote",
    "winner",
    "completion",
    "swapped",
)
REQUIRED_VOTE_COLUMNS = ("method_a", "method_b", "criterion")
RATING_COLUMNS = ("criterion", "method", "rating", "ci_low", "ci_high", "wins", "losses", "draws", "num_votes", "fixed")

_LN10 = math.log(10.0)


# ----------------------------------------------------------------------------------------------
# The fit
# ----------------------------------------------------------------------------------------------


def win_matrix(
    index_a: np.ndarray, index_b: np.ndarray, votes: np.ndarray, num_methods: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """A (K, K) with A[i, j] = (weighted) wins of method i over method j; a draw (3) is a win for both.

    `index_a`, `index_b`: (V,) method indices of each vote's pair; `votes`: (V,) in {1, 2, 3}.
    """
    weights = np.ones(len(votes)) if weights is None else np.asarray(weights, dtype=np.float64)
    a_wins = (votes == 1) | (votes == 3)
    b_wins = (votes == 2) | (votes == 3)
    winners = np.concatenate([index_a[a_wins], index_b[b_wins]])
    losers = np.concatenate([index_b[a_wins], index_a[b_wins]])
    counts = np.bincount(
        winners * num_methods + losers,
        weights=np.concatenate([weights[a_wins], weights[b_wins]]),
        minlength=num_methods * num_methods,
    )
    return counts.reshape(num_methods, num_methods)


def fit_ratings(wins: np.ndarray, fixed: Mapping[int, float], prior_weight: float = DEFAULT_PRIOR_WEIGHT) -> np.ndarray:
    """Minimise the Bradley–Terry loss for a win matrix `wins` (K, K); returns (K,) ratings.

    `fixed`: method index -> rating held constant (the anchor, or the frozen methods). The others start
    at `INITIAL_RATING` and are fitted.
    """
    num_methods = wins.shape[0]
    free = np.array([index for index in range(num_methods) if index not in fixed], dtype=np.int64)
    base = np.full(num_methods, INITIAL_RATING)
    for index, rating in fixed.items():
        base[index] = rating
    x_base = (base - INITIAL_RATING) / ELO_SCALE  # ratings in units of 400 Elo, 0 = 1000
    if len(free) == 0:
        return base
    total = max(float(wins.sum()), 1.0)  # the loss is scaled by 1/total so tolerances are per vote

    def loss_and_gradient(x_free: np.ndarray) -> tuple[float, np.ndarray]:
        x = x_base.copy()
        x[free] = x_free
        difference = x[None, :] - x[:, None]  # (K, K) x_j - x_i
        loss = np.sum(wins * np.logaddexp(0.0, _LN10 * difference)) + prior_weight * np.sum(x_free**2)
        pair_gradient = wins * _LN10 / (1.0 + np.exp(-_LN10 * difference))  # dL / d(x_j - x_i)
        gradient = pair_gradient.sum(axis=0) - pair_gradient.sum(axis=1)
        return loss / total, (gradient[free] + 2.0 * prior_weight * x_free) / total

    result = minimize(
        loss_and_gradient,
        np.zeros(len(free)),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 2000, "gtol": 1e-10, "ftol": 1e-15},
    )
    ratings = base.copy()
    ratings[free] = INITIAL_RATING + ELO_SCALE * result.x
    return ratings


def fit_elo(
    votes: pd.DataFrame,
    mode: str = "tournament",
    anchor: str | None = None,
    frozen: Mapping[str, float] | Mapping[str, Mapping[str, float]] | None = None,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
) -> pd.DataFrame:
    """Fit Elo ratings per criterion from a votes table (columns in the module docstring).

    Args:
        votes: one row per vote; needs method_a, method_b, criterion and vote (1/2/3) or winner.
        mode: "tournament" (`anchor` fixed at 1000) or "new_method" (`frozen` methods fixed, the rest fitted).
        anchor: tournament anchor; default the alphabetically first method.
        frozen: new-method mode: {method: rating} for every criterion, or {criterion: {method: rating}}.
        n_bootstrap: bootstrap replicates over comparisons for the confidence interval; 0 = no interval.
        confidence: two-sided coverage of the percentile interval.
        seed: bootstrap seed.
        prior_weight: weak prior that keeps undefeated methods finite (module docstring); 0 = pure ML.

    Returns:
        A long table, one row per (criterion, method), columns `RATING_COLUMNS`: rating, the interval
        (NaN without bootstrap; equal to the rating for fixed methods), wins/losses/draws and vote count
        from that method's side, and `fixed` (anchor or frozen). Methods without a vote in a criterion get
        NaN (they cannot be rated) unless frozen. Criteria keep their order of appearance.
    """
    votes = normalize_votes(votes)
    if mode not in ("tournament", "new_method"):
        raise ValueError(f"mode must be 'tournament' or 'new_method', got {mode!r}")
    criteria = list(dict.fromkeys(votes["criterion"]))
    frozen_per_criterion = _frozen_per_criterion(frozen, criteria) if mode == "new_method" else {}
    methods = sorted(
        set(votes["method_a"]) | set(votes["method_b"]) | {m for f in frozen_per_criterion.values() for m in f}
    )
    if mode == "tournament":
        anchor = methods[0] if anchor is None else anchor
        if anchor not in methods:
            raise ValueError(f"anchor {anchor!r} has no votes; methods are {methods}")
        if frozen:
            raise ValueError("frozen ratings are for mode='new_method'; a tournament fits every method but the anchor")
    elif not frozen:
        raise ValueError("new_method mode needs the existing methods' ratings in `frozen`")
    position = {method: index for index, method in enumerate(methods)}
    index_a = votes["method_a"].map(position).to_numpy()
    index_b = votes["method_b"].map(position).to_numpy()
    vote_values = votes["vote"].to_numpy()
    comparison_codes, comparison_ids = pd.factorize(votes["comparison_id"])
    rng = np.random.default_rng(seed)
    resample_counts = [
        rng.multinomial(len(comparison_ids), np.full(len(comparison_ids), 1.0 / len(comparison_ids)))
        for _ in range(n_bootstrap)
    ]

    rows = []
    for criterion in criteria:
        rows_here = (votes["criterion"] == criterion).to_numpy()
        a, b, v = index_a[rows_here], index_b[rows_here], vote_values[rows_here]
        voted = np.zeros(len(methods), dtype=bool)
        voted[a] = voted[b] = True
        if mode == "tournament":
            fixed = {position[anchor]: INITIAL_RATING}
        else:
            fixed = {position[method]: float(rating) for method, rating in frozen_per_criterion[criterion].items()}
        # Only methods with votes (or fixed ones) enter the fit; others cannot be rated.
        rated = np.flatnonzero(voted | np.isin(np.arange(len(methods)), list(fixed)))
        local = np.full(len(methods), -1, dtype=np.int64)  # global method index -> index among the rated
        local[rated] = np.arange(len(rated))
        a_local, b_local = local[a], local[b]
        fixed_local = {int(local[index]): rating for index, rating in fixed.items()}

        def fit(weights: np.ndarray | None) -> np.ndarray:
            return fit_ratings(win_matrix(a_local, b_local, v, len(rated), weights), fixed_local, prior_weight)  # noqa: B023

        ratings = np.full(len(methods), np.nan)
        ratings[rated] = fit(None)
        low, high = np.full(len(methods), np.nan), np.full(len(methods), np.nan)
        if n_bootstrap > 0:
            samples = np.stack(
                [fit(counts[comparison_codes[rows_here]].astype(np.float64)) for counts in resample_counts]
            )
            tail = (1.0 - confidence) / 2.0 * 100.0
            low[rated], high[rated] = np.percentile(samples, [tail, 100.0 - tail], axis=0)
        for index, method in enumerate(methods):
            as_a, as_b = a == index, b == index
            rows.append(
                {
                    "criterion": criterion,
                    "method": method,
                    "rating": ratings[index],
                    "ci_low": low[index],
                    "ci_high": high[index],
                    "wins": int(np.sum(as_a & (v == 1)) + np.sum(as_b & (v == 2))),
                    "losses": int(np.sum(as_a & (v == 2)) + np.sum(as_b & (v == 1))),
                    "draws": int(np.sum((as_a | as_b) & (v == 3))),
                    "num_votes": int(np.sum(as_a | as_b)),
                    "fixed": index in fixed,
                }
            )
    return pd.DataFrame(rows, columns=list(RATING_COLUMNS))


# ----------------------------------------------------------------------------------------------
# Tables and files
# ----------------------------------------------------------------------------------------------


def normalize_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """Check a votes table and fill what can be derived: `vote` from `winner` (or the reverse), and a
    `comparison_id` per row when absent (each row is then its own comparison for the bootstrap)."""
    missing = [column for column in REQUIRED_VOTE_COLUMNS if column not in votes.columns]
    if missing or ("vote" not in votes.columns and "winner" not in votes.columns):
        raise ValueError(
            f"the votes table needs columns {list(REQUIRED_VOTE_COLUMNS)} and 'vote' (1 = method_a better, "
            f"2 = method_b better, 3 = draw) or 'winner'; it has {list(votes.columns)}"
        )
    votes = votes.copy()
    votes["method_a"] = votes["method_a"].astype(str)
    votes["method_b"] = votes["method_b"].astype(str)
    votes["criterion"] = votes["criterion"].astype(str)
    if "vote" not in votes.columns:
        winner = votes["winner"].astype(str)
        votes["vote"] = np.select(
            [winner == votes["method_a"], winner == votes["method_b"], winner == DRAW], [1, 2, 3], 0
        )
    votes["vote"] = pd.to_numeric(votes["vote"], errors="coerce")
    bad = ~votes["vote"].isin([1, 2, 3])
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{int(bad.sum())} votes are not 1, 2 or 3 (or a winner of the pair), e.g. row {first}")
    if (votes["method_a"] == votes["method_b"]).any():
        raise ValueError("a vote compares a method with itself")
    votes["vote"] = votes["vote"].astype(np.int64)
    if "winner" not in votes.columns:
        votes["winner"] = np.select(
            [votes["vote"] == 1, votes["vote"] == 2], [votes["method_a"], votes["method_b"]], DRAW
        )
    if "comparison_id" not in votes.columns:
        votes["comparison_id"] = np.arange(len(votes))
    return votes


def read_votes(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check a votes CSV (columns in the module docstring)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"votes file not found: {path}")
    return normalize_votes(pd.read_csv(path))


def elo_from_csv(path: str | os.PathLike, **fit_kwargs) -> pd.DataFrame:
    """`fit_elo` on a votes CSV (what `python -m evaluation elo VOTES.csv` runs); same keyword arguments."""
    return fit_elo(read_votes(path), **fit_kwargs)


def ratings_table(ratings: pd.DataFrame, criteria: Sequence[str] | None = None) -> pd.DataFrame:
    """Long ratings (from `fit_elo`) → methods × criteria table of ratings, methods sorted by the last
    criterion ("overall" when present) from best to worst."""
    table = ratings.pivot(index="method", columns="criterion", values="rating")
    order = list(criteria) if criteria is not None else list(dict.fromkeys(ratings["criterion"]))
    table = table[order]
    sort_key = "overall" if "overall" in table.columns else order[-1]
    return table.sort_values(sort_key, ascending=False, na_position="last")


def rating_cells(
    ratings: pd.DataFrame, criteria: Sequence[str] | None = None, titles: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """`ratings_table` as text for people: each cell "rating [ci_low, ci_high]" (the interval beside every
    rating), "rating (fixed reference)" for a method whose rating was held fixed, "–" for no rating; one
    `method` column first, criteria renamed by `titles`."""
    table = ratings_table(ratings, criteria)
    indexed = ratings.set_index(["method", "criterion"])
    rows = []
    for method in table.index:
        cells = {"method": str(method)}
        for criterion in table.columns:
            row = indexed.loc[(method, criterion)]
            if pd.isna(row["rating"]):
                cell = "–"
            elif row["fixed"]:
                cell = f"{row['rating']:.0f} (fixed reference)"
            elif pd.isna(row["ci_low"]):
                cell = f"{row['rating']:.0f}"
            else:
                cell = f"{row['rating']:.0f} [{row['ci_low']:.0f}, {row['ci_high']:.0f}]"
            cells[(titles or {}).get(criterion, criterion)] = cell
        rows.append(cells)
    return pd.DataFrame(rows)


def markdown_table(
    ratings: pd.DataFrame, criteria: Sequence[str] | None = None, titles: Mapping[str, str] | None = None
) -> str:
    """A Markdown table of `rating_cells`."""
    cells = rating_cells(ratings, criteria, titles)
    return markdown_rows(list(cells.columns), cells.values.tolist(), right_aligned=len(cells.columns) - 1) + "\n"


def _frozen_per_criterion(
    frozen: Mapping[str, float] | Mapping[str, Mapping[str, float]] | None, criteria: Sequence[str]
) -> dict[str, dict[str, float]]:
    """{method: rating} (for every criterion) or {criterion: {method: rating}} → the latter, checked."""
    if not frozen:
        return {}
    if all(isinstance(value, Mapping) for value in frozen.values()):
        missing = [criterion for criterion in criteria if criterion not in frozen]
        if missing:
            raise ValueError(f"frozen ratings are missing criteria {missing}")
        return {criterion: {m: float(r) for m, r in frozen[criterion].items()} for criterion in criteria}
    return {criterion: {m: float(r) for m, r in frozen.items()} for criterion in criteria}


def frozen_from_ratings(ratings: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Long ratings (from `fit_elo`, e.g. a saved ratings.csv) → {criterion: {method: rating}} for `frozen`."""
    known = ratings.dropna(subset=["rating"])
    return {
        criterion: dict(zip(group["method"], group["rating"].astype(float)))
        for criterion, group in known.groupby("criterion", sort=False)
    }
