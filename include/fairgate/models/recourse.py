"""Recourse: the least-cost change of actionable inputs that turns an unfavourable decision favourable.

The policy's ``recourse.actionable`` names the inputs a person can change, each with an allowed
direction, bounds and a step (numbers) or the values it may take (categories); every other
input is immutable, and so are the protected attributes (the policy refuses them) and the inputs
the proxy check flagged (left out here, with a note).

Cost: a numeric change costs ``|Δ| / s`` where ``s`` is the input's standard deviation in the
model's training rows; a category change costs ``recourse.categorical_cost``. A numeric input with a
``step`` changes by a whole number of steps and stays within its bounds. The answer:

- **linear models** (a pipeline ending in a logistic regression): *exact*. The decision function
  moves by a fixed slope per unit of each numeric input, so for each choice of category changes
  the cheapest numeric change is a small covering knapsack (:func:`least_cost`): without steps
  the fractional knapsack (the input with the largest slope per unit cost first, up to its bound)
  is optimal; with steps it is an integer program, solved exactly by HiGHS through
  ``scipy.optimize.milp`` whenever the fractional answer is not already in whole steps. Every
  combination of category changes is tried, and the result is checked with the model itself.
- **other models**: the grid of ``search_steps`` values per numeric input (each way, within its
  bounds, in whole steps) and every allowed category. When the whole grid has at most
  ``EXHAUSTIVE_LIMIT`` changes it is searched exhaustively: the cheapest favourable change *on that
  grid*. A larger grid is searched one or two inputs at a time, and the method says it is not
  proven least cost.

No change within the bounds is a valid answer (``feasible: False``) and is said so.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.data.features import feature_frame
from fairgate.errors import RecourseError, RecourseOutOfTime
from fairgate.fairness.gate import Finding, judge_metric
from fairgate.fairness.metrics import Interval, _z, newcombe_interval, wilson_interval
from fairgate.groups import cell_mask, comparisons, group_codes
from fairgate.models.training import predict
from fairgate.policy.schema import Threshold
from fairgate.values import plain

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy.schema import Actionable, Policy


SEARCH_CHUNK = 2_000  # candidate changes scored per model call in the grid search
EXHAUSTIVE_LIMIT = 50_000  # a non-linear model's whole grid is searched when it has at most this many changes

# Aim this far (in log-odds) past the threshold, so a change that lands on it is not undone by the
# integer program's tolerance (HiGHS's primal feasibility tolerance is 1e-7) or by rounding.
MARGIN = 1e-6


Setting = dict[str, float | str]  # new values of some inputs: a candidate change


ChangeJSON = TypedDict("ChangeJSON", {"column": str, "from": Any, "to": Any, "cost": float})


class RecourseJSON(TypedDict):
    feasible: bool
    method: str
    cost: float | None
    score: float | None
    changes: list[ChangeJSON]
    notes: list[str]


class RecourseSide(TypedDict):
    """One side of a comparison in the recourse audit."""

    unfavourable: int
    with_recourse: int
    share: float | None
    share_ci: list[float | None]
    median_cost: float | None
    median_cost_ci: list[float | None]


class RecourseComparison(TypedDict):
    unprivileged: RecourseSide
    privileged: RecourseSide
    share_gap: Interval | None
    median_cost_gap: float | None


class RecourseAudit(TypedDict):
    """Recourse over a window of decisions (:func:`audit`): per comparison, the share with recourse and its cost."""

    measured_on: str
    comparisons: dict[str, RecourseComparison]
    max_share_gap: float | None


@dataclass(frozen=True)
class Change:
    column: str
    before: Any
    after: Any
    cost: float

    def as_dict(self) -> ChangeJSON:
        return {
            "column": self.column,
            "from": plain(self.before),
            "to": plain(self.after),
            "cost": round(self.cost, 6),
        }


@dataclass
class Recourse:
    feasible: bool
    method: str
    changes: list[Change] = field(default_factory=list)
    cost: float | None = None
    score: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> RecourseJSON:
        return {
            "feasible": self.feasible,
            "method": self.method,
            "cost": self.cost,
            "score": self.score,
            "changes": [c.as_dict() for c in self.changes],
            "notes": self.notes,
        }


def is_linear(model: Any) -> bool:
    """A Fairgate pipeline whose decision function is linear in its numeric inputs."""
    from sklearn.linear_model import LogisticRegression

    steps = getattr(model, "steps", None) or []
    return bool(steps) and isinstance(steps[-1][1], LogisticRegression)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def cost_unit(train: pd.DataFrame, policy: Policy) -> dict[str, float]:
    """The unit a numeric change costs in: each numeric input's standard deviation (ddof 0) over the
    *training split*, the rows the model was fitted on (1.0 where an input is constant there).

    The one definition the gate, the nightly audit, contests and the served model share: the gate
    computes it, the deployment manifest keeps it (``recourse_cost_unit``), the others read it there.
    """
    return {c: float(train[c].astype(float).std(ddof=0)) or 1.0 for c in policy.numeric if c in train.columns}


def actionable(policy: Policy, proxies: list[str]) -> tuple[dict[str, Actionable], list[str]]:
    """The policy's actionable inputs less the flagged proxies, and a note for each proxy left out."""
    spec = {c: s for c, s in policy.recourse.actionable.items() if c not in proxies}
    notes = [
        f"{c} is a proxy of a protected attribute (the proxy check flagged it): treated as immutable"
        for c in policy.recourse.actionable
        if c in proxies
    ]
    return spec, notes


def _numeric_range(value: float, spec: Actionable) -> tuple[float, float]:
    """How far a numeric input may move down and up from ``value`` (both >= 0)."""
    low = float(spec.min) if spec.min is not None else -math.inf
    high = float(spec.max) if spec.max is not None else math.inf
    down = 0.0 if spec.direction == "increase" else max(0.0, value - low)
    up = 0.0 if spec.direction == "decrease" else max(0.0, high - value)
    return down, up


def _round_away(delta: float, step: float | None) -> float:
    if not step:
        return delta
    return math.copysign(math.ceil(abs(delta) / step - 1e-9) * step, delta)


def _score(model: Any, rows: pd.DataFrame, policy: Policy) -> Any:
    return predict(model, rows, policy)[0]


def _decision_function(model: Any, rows: pd.DataFrame, policy: Policy) -> Any:
    return model.decision_function(feature_frame(rows, policy, model))


def compute(
    model: Any,
    record: dict[str, Any],
    policy: Policy,
    *,
    scale: dict[str, float],
    proxies: list[str] | None = None,
    deadline: float | None = None,
) -> Recourse:
    """The least-cost recourse for one record (a dict of its input columns) under ``model``.

    ``deadline`` (a ``time.monotonic()`` instant): the search stops there with
    :class:`RecourseOutOfTime`, checked between model calls, so one record cannot hold a request.
    """
    import pandas as pd

    spec, notes = actionable(policy, proxies or [])
    if not spec:
        raise RecourseError(
            "Policy key 'recourse.actionable' names no input a person can change (proxies are "
            "immutable); there is no recourse to compute."
        )
    row = pd.DataFrame([record])
    score = float(_score(model, row, policy)[0])
    if score >= policy.model.decision_threshold:
        raise RecourseError(
            f"The decision is already favourable (score {score:.3f} >= threshold "
            f"{policy.model.decision_threshold:g}); recourse applies to unfavourable decisions."
        )
    found = (
        _linear(model, row, policy, spec, scale, deadline=deadline)
        if is_linear(model)
        else _search(model, row, policy, spec, scale, deadline=deadline)
    )
    found.notes = notes + found.notes
    return found


def _category_options(row: pd.DataFrame, spec: dict[str, Actionable], policy: Policy) -> list[list[tuple[str, Any]]]:
    """For each actionable category: no change, or each allowed other value."""
    out = []
    for col, s in spec.items():
        if col in policy.numeric:
            continue
        current = row[col].iloc[0]
        out.append([(col, current)] + [(col, v) for v in s.values or [] if v != current])
    return out


def _apply(row: pd.DataFrame, changes: Setting) -> pd.DataFrame:
    out = row.copy()
    for col, value in changes.items():
        out[col] = [value]
    return out


def _changes(row: pd.DataFrame, after: Setting, scale: dict[str, float], policy: Policy) -> list[Change]:
    out = []
    for col, value in after.items():
        before = row[col].iloc[0]
        if col in policy.numeric:
            if abs(float(value) - float(before)) > 1e-12:
                out.append(Change(col, before, value, abs(float(value) - float(before)) / scale[col]))
        elif value != before:
            out.append(Change(col, before, value, policy.recourse.categorical_cost))
    return out


def _in_time(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise RecourseOutOfTime("The recourse search ran out of its time budget before it was done.")


@dataclass(frozen=True)
class Lever:
    """One numeric input as :func:`least_cost` sees it: a unit of it (one ``step``, or 1.0 without a
    step) moved in its helpful direction raises the decision function by ``gain`` (> 0) and costs
    ``cost``; at most ``units`` of it fit within its bounds (``inf`` without one); ``whole``: the
    units are whole numbers (the input has a step)."""

    column: str
    gain: float
    cost: float
    units: float
    whole: bool


def _levers(
    x: dict[str, float], slopes: dict[str, float], spec: dict[str, Actionable], scale: dict[str, float]
) -> list[Lever]:
    """The numeric inputs that can raise the decision function from ``x``, as levers."""
    out = []
    for c, slope in slopes.items():
        down, up = _numeric_range(x[c], spec[c])
        reach = up if slope > 0 else down
        step = spec[c].step
        units = math.floor(reach / step + 1e-9) if step and math.isfinite(reach) else reach
        if abs(slope) > 1e-12 and units > 0:
            unit = float(step or 1.0)
            out.append(Lever(c, abs(slope) * unit, unit / scale[c], float(units), bool(step)))
    return out


def _fractional(need: float, levers: list[Lever]) -> list[float] | None:
    """The fractional knapsack: the levers with the most gain per unit of cost first, each up to its bound.
    Optimal when units need not be whole; with whole units it is the integer program's lower bound."""
    units = [0.0] * len(levers)
    for i in sorted(range(len(levers)), key=lambda i: levers[i].gain / levers[i].cost, reverse=True):
        if need <= 0:
            break
        units[i] = min(need / levers[i].gain, levers[i].units)
        need -= units[i] * levers[i].gain
    return units if need <= 1e-12 * max(1.0, abs(need)) else None


def least_cost(need: float, levers: list[Lever]) -> list[float] | None:
    """Units of each lever that raise the decision function by at least ``need`` at the least total cost,
    or None when even every lever at its bound falls short. Exact: the fractional knapsack when its
    answer is in whole units where it must be, else the mixed-integer program

        minimise  sum(cost_i * u_i)  subject to  sum(gain_i * u_i) >= need,  0 <= u_i <= units_i,
                  u_i whole for the levers with a step,

    solved to a zero optimality gap by HiGHS (``scipy.optimize.milp``).
    """
    if need <= 0:
        return [0.0] * len(levers)
    relaxed = _fractional(need, levers)
    if relaxed is None:
        return None
    if all(not lever.whole or abs(u - round(u)) < 1e-9 for u, lever in zip(relaxed, levers, strict=True)):
        return [float(round(u)) if lever.whole else u for u, lever in zip(relaxed, levers, strict=True)]
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    found = milp(
        c=np.array([lever.cost for lever in levers]),
        constraints=LinearConstraint(np.array([[lever.gain for lever in levers]]), lb=need, ub=np.inf),
        integrality=np.array([int(lever.whole) for lever in levers]),
        bounds=Bounds(np.zeros(len(levers)), np.array([lever.units for lever in levers])),
        options={"mip_rel_gap": 0.0},
    )
    if found.status != 0 or found.x is None:  # 2: infeasible in whole units
        return None
    return [float(round(u)) if lever.whole else max(0.0, float(u)) for u, lever in zip(found.x, levers, strict=True)]


def _slopes(model: Any, base: pd.DataFrame, policy: Policy, numeric: list[str]) -> dict[str, float]:
    """The decision function's slope per unit of each numeric input at ``base`` (one row; exact for a
    linear model, where it is the same at every row)."""
    if not numeric:
        return {}
    d0 = float(_decision_function(model, base, policy)[0])
    moved = pd_concat([_apply(base, {c: float(base[c].iloc[0]) + 1.0}) for c in numeric])
    return {c: float(d) - d0 for c, d in zip(numeric, _decision_function(model, moved, policy), strict=True)}


def _linear(
    model: Any,
    row: pd.DataFrame,
    policy: Policy,
    spec: dict[str, Actionable],
    scale: dict[str, float],
    *,
    deadline: float | None = None,
) -> Recourse:
    target = _logit(policy.model.decision_threshold) + MARGIN
    numeric = [c for c in spec if c in policy.numeric]
    best: tuple[float, Setting] | None = None
    for choice in itertools.product(*_category_options(row, spec, policy)):
        _in_time(deadline)
        base = _apply(row, dict(choice))
        d0 = float(_decision_function(model, base, policy)[0])
        cat_cost = sum(policy.recourse.categorical_cost for col, v in choice if v != row[col].iloc[0])
        slopes = _slopes(model, base, policy, numeric)
        x = {c: float(base[c].iloc[0]) for c in numeric}
        levers = _levers(x, slopes, spec, scale)
        units = least_cost(target - d0, levers)
        if units is None:
            continue
        after: Setting = dict(choice)
        cost = cat_cost
        for lever, u in zip(levers, units, strict=True):
            if u > 0:
                after[lever.column] = x[lever.column] + math.copysign(
                    u * (spec[lever.column].step or 1.0), slopes[lever.column]
                )
                cost += u * lever.cost
        if best is None or cost < best[0]:
            best = (cost, after)
    return _finish(model, row, policy, best, scale, method="exact (linear model)")


def linear_batch(
    model: Any, rows: pd.DataFrame, policy: Policy, spec: dict[str, Actionable], scale: dict[str, float]
) -> tuple[Any, Any]:
    """:func:`compute` for many rows of a linear model at once: whether each has recourse, and its cost.

    The same answer, vectorised where it can be: a numeric input's slope is the same for every row,
    each category value shifts each row's decision function by what one model call on all rows says,
    and the fractional knapsack runs on all rows at once. The rows whose fractional answer is not in
    whole steps get the integer program one by one (:func:`least_cost`). The cheapest change is
    checked with the model, one call per category choice.
    """
    import numpy as np

    target = _logit(policy.model.decision_threshold) + MARGIN
    d0 = _decision_function(model, rows, policy)
    numeric = [c for c in spec if c in policy.numeric]
    probe = rows.iloc[[0]]
    slopes = {
        c: float(_decision_function(model, _apply(probe, {c: float(probe[c].iloc[0]) + 1.0}), policy)[0] - d0[0])
        for c in numeric
    }
    order = sorted(
        (c for c in numeric if abs(slopes[c]) > 1e-12), key=lambda c: abs(slopes[c]) * scale[c], reverse=True
    )
    categorical = [c for c in spec if c not in policy.numeric]
    choices = [[None, *(spec[c].values or [])] for c in categorical]  # None: keep the row's value
    best_cost = np.full(len(rows), np.inf)
    for choice in itertools.product(*choices):
        changed = rows.copy()
        cost = np.zeros(len(rows))
        for col, value in zip(categorical, choice, strict=True):
            if value is not None:
                moved = changed[col].to_numpy() != value
                changed[col] = value
                cost += np.where(moved, policy.recourse.categorical_cost, 0.0)
        need0 = target - _decision_function(model, changed, policy)  # before any numeric change
        start = {c: changed[c].to_numpy(dtype=float) for c in order}
        category_cost = cost.copy()
        need = need0.copy()
        in_part_steps = np.zeros(len(rows), dtype=bool)
        for c in order:  # the fractional knapsack, every row at once
            x = start[c]
            low = spec[c].min if spec[c].min is not None else -np.inf
            high = spec[c].max if spec[c].max is not None else np.inf
            up = slopes[c] > 0
            allowed = spec[c].direction in ("any", "increase" if up else "decrease")
            reach = np.maximum(0.0, (high - x) if up else (x - low)) if allowed else np.zeros(len(rows))
            step = spec[c].step
            if step:
                reach = np.where(np.isfinite(reach), np.floor(reach / step + 1e-9) * step, reach)
            delta = np.minimum(np.maximum(need, 0.0) / abs(slopes[c]), reach)
            if step:
                in_part_steps |= np.abs(delta / step - np.round(delta / step)) >= 1e-9
            changed[c] = x + np.sign(slopes[c]) * delta
            need = need - abs(slopes[c]) * delta
            cost += delta / scale[c]
        reached = need <= 1e-9
        for i in map(int, np.flatnonzero(reached & in_part_steps)):  # whole steps: the integer program, row by row
            x_i = {c: float(start[c][i]) for c in order}
            levers = _levers(x_i, {c: slopes[c] for c in order}, spec, scale)
            units = least_cost(float(need0[i]), levers) or [0.0] * len(levers)  # feasible: the fraction was
            moved = dict(x_i)
            for lever, u in zip(levers, units, strict=True):
                moved[lever.column] += math.copysign(u * (spec[lever.column].step or 1.0), slopes[lever.column])
            for c in order:
                changed.loc[changed.index[i], c] = moved[c]
            cost[i] = category_cost[i] + sum(u * lever.cost for lever, u in zip(levers, units, strict=True))
        if reached.any():  # the model has the last word
            reached &= _score(model, changed, policy) >= policy.model.decision_threshold
        best_cost = np.where(reached & (cost < best_cost), cost, best_cost)
    feasible = np.isfinite(best_cost)
    return feasible, np.where(feasible, best_cost, np.nan)


def pd_concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def _grid(value: float, spec: Actionable, steps: int) -> list[float]:
    """Values a numeric input may take in the search: ``steps`` points each way within its bounds."""
    import numpy as np

    down, up = _numeric_range(value, spec)
    out = set()
    for reach, sign in ((down, -1), (up, 1)):
        if reach <= 0:
            continue
        reach = min(reach, 10 * steps * (spec.step or 1.0)) if math.isinf(reach) else reach
        for d in np.linspace(reach / steps, reach, steps):
            if spec.step:  # whole steps, within the bound
                d = min(_round_away(float(d), spec.step), math.floor(reach / spec.step + 1e-9) * spec.step)
            if d > 0:
                out.add(value + sign * float(d))
    return sorted(out)


def _grid_values(row: pd.DataFrame, policy: Policy, spec: dict[str, Actionable]) -> dict[str, list[Any]]:
    """Each actionable input's other values on the search grid."""
    steps = policy.recourse.search_steps
    values: dict[str, list[Any]] = {}
    for col, s in spec.items():
        if col in policy.numeric:
            values[col] = _grid(float(row[col].iloc[0]), s, steps)
        else:
            values[col] = [v for v in s.values or [] if v != row[col].iloc[0]]
    return values


def grid_size(row: pd.DataFrame, policy: Policy, spec: dict[str, Actionable]) -> int:
    """How many changes the whole search grid holds (every input at once)."""
    return math.prod(len(v) + 1 for v in _grid_values(row, policy, spec).values()) - 1


def candidates(
    row: pd.DataFrame, policy: Policy, spec: dict[str, Actionable], *, max_changed: int | None
) -> list[Setting]:
    """Every change of at most ``max_changed`` inputs (None: all) over the search grid."""
    values = _grid_values(row, policy, spec)
    cols = [c for c in spec if values[c]]
    out = []
    for k in range(1, (max_changed or len(cols)) + 1):
        for subset in itertools.combinations(cols, k):
            out += [dict(zip(subset, combo, strict=True)) for combo in itertools.product(*(values[c] for c in subset))]
    return out


def _search(
    model: Any,
    row: pd.DataFrame,
    policy: Policy,
    spec: dict[str, Actionable],
    scale: dict[str, float],
    *,
    max_changed: int | None = 2,
    deadline: float | None = None,
) -> Recourse:
    import numpy as np

    if max_changed is not None and grid_size(row, policy, spec) <= EXHAUSTIVE_LIMIT:
        max_changed = None  # the whole grid is small enough to search: least cost on it
    options = candidates(row, policy, spec, max_changed=max_changed)
    if not options:
        return _finish(model, row, policy, None, scale, method="exhaustive over the search grid (no change possible)")
    favourable = np.zeros(len(options), dtype=bool)
    for start in range(0, len(options), SEARCH_CHUNK):  # the budget is checked between model calls
        _in_time(deadline)
        frames = pd_concat([_apply(row, o) for o in options[start : start + SEARCH_CHUNK]])
        favourable[start : start + SEARCH_CHUNK] = _score(model, frames, policy) >= policy.model.decision_threshold
    best = None
    for option, ok in zip(options, favourable, strict=True):
        if ok:
            cost = sum(c.cost for c in _changes(row, option, scale, policy))
            if best is None or cost < best[0]:
                best = (cost, option)
    method = (
        f"bounded search (at most {max_changed} inputs changed; not proven least cost)"
        if max_changed
        else f"exhaustive over the search grid ({len(options):,} changes)"
    )
    return _finish(model, row, policy, best, scale, method=method)


def brute_force(model: Any, record: dict[str, Any], policy: Policy, *, scale: dict[str, float]) -> Recourse:
    """The cheapest favourable change over the full grid (every input at once): the search's yardstick."""
    import pandas as pd

    spec, _ = actionable(policy, [])
    return _search(model, pd.DataFrame([record]), policy, spec, scale, max_changed=None)


def _finish(
    model: Any,
    row: pd.DataFrame,
    policy: Policy,
    best: tuple[float, Setting] | None,
    scale: dict[str, float],
    *,
    method: str,
) -> Recourse:
    if best is None:
        return Recourse(
            feasible=False,
            method=method,
            notes=["no change of the actionable inputs within their bounds makes the decision favourable"],
        )
    changes = _changes(row, best[1], scale, policy)
    score = float(_score(model, _apply(row, best[1]), policy)[0])
    if score < policy.model.decision_threshold:  # the model has the last word
        return Recourse(
            feasible=False,
            method=method,
            notes=[f"the computed change scores {score:.3f}, below the threshold (rounding); treated as no recourse"],
        )
    return Recourse(
        feasible=True, method=method, changes=changes, cost=round(sum(c.cost for c in changes), 6), score=score
    )


def sentence(found: Recourse, policy: Policy) -> str:
    """The recourse in plain words, with the policy's labels for the inputs."""
    if not found.feasible:
        return "No change of the inputs you can act on, within the bounds the policy allows, would change the decision."
    parts = []
    for c in found.changes:
        label = policy.dataset.feature_labels.get(c.column, c.column.replace("_", " ").replace("-", " "))
        if c.column in policy.numeric:
            delta = float(c.after) - float(c.before)
            parts.append(
                f"{label} {'up' if delta > 0 else 'down'} by {abs(delta):g} "
                f"(from {float(c.before):g} to {float(c.after):g})"
            )
        else:
            shown = policy.dataset.value_labels.get(c.column, {})
            parts.append(f"{label} {shown.get(str(c.after), c.after)} instead of {shown.get(str(c.before), c.before)}")
    return "Changing " + " and ".join(parts) + " would change the decision."


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Distribution-free interval for a median: the order statistics whose ranks bound it (normal
    approximation to the binomial); None with fewer than 6 values."""
    n = len(values)
    if n < 6:
        return None, None
    ordered = sorted(values)
    half = _z(confidence) * math.sqrt(n) / 2
    low, high = max(0, math.floor(n / 2 - half) - 1), min(n - 1, math.ceil(n / 2 + half))
    return ordered[low], ordered[high]


def audit(
    model: Any,
    window: pd.DataFrame,
    decisions: Any,
    policy: Policy,
    *,
    scale: dict[str, float],
    proxies: list[str],
    sample: int,
    seed: int,
) -> RecourseAudit:
    """Recourse as a fairness measure over a window of decisions: per side of each comparison, the share
    of unfavourable decisions that have recourse within the bounds, and the median cost of those that do.

    At most ``sample`` unfavourable decisions are computed (a uniform sample, said in ``measured_on``).
    """
    import numpy as np

    unfavourable = np.flatnonzero(np.asarray(decisions) == 0)
    chosen = unfavourable
    if len(unfavourable) > sample:
        chosen = np.sort(np.random.default_rng(seed).choice(unfavourable, sample, replace=False))
    rows = window.iloc[chosen].reset_index(drop=True)
    spec, _ = actionable(policy, proxies)
    if is_linear(model) and len(rows):
        feasible, cost = linear_batch(model, rows, policy, spec, scale)
    else:
        feasible = np.zeros(len(rows), dtype=bool)
        cost = np.full(len(rows), np.nan)
        for i, record in enumerate(rows.to_dict("records")):
            found = compute(model, {str(k): v for k, v in record.items()}, policy, scale=scale, proxies=proxies)
            feasible[i], cost[i] = found.feasible, found.cost if found.feasible else np.nan
    codes = group_codes(rows, policy)
    out: dict[str, RecourseComparison] = {}

    def side(cell: tuple[tuple[str, int], ...]) -> RecourseSide:
        mask = cell_mask(codes, cell)
        n, k = int(mask.sum()), int(feasible[mask].sum())
        low, high = wilson_interval(k, n, policy.fairness.confidence_level) if n else (None, None)
        costs = [float(c) for c in cost[mask & feasible]]
        m_low, m_high = median_interval(costs, policy.fairness.confidence_level)
        return {
            "unfavourable": n,
            "with_recourse": k,
            "share": k / n if n else None,
            "share_ci": [low, high],
            "median_cost": float(np.median(costs)) if costs else None,
            "median_cost_ci": [m_low, m_high],
        }

    for comp in comparisons(policy):
        u, p = side(comp.unprivileged), side(comp.privileged)
        gap: Interval | None = None
        k_u, k_p = u["with_recourse"], p["with_recourse"]
        if u["unfavourable"] and p["unfavourable"]:
            g_low, g_high = newcombe_interval(
                u["with_recourse"],
                u["unfavourable"],
                p["with_recourse"],
                p["unfavourable"],
                policy.fairness.confidence_level,
            )
            gap = {"value": k_u / u["unfavourable"] - k_p / p["unfavourable"], "ci_low": g_low, "ci_high": g_high}
        cost_gap = (
            u["median_cost"] - p["median_cost"]
            if u["median_cost"] is not None and p["median_cost"] is not None
            else None
        )
        out[comp.key] = {"unprivileged": u, "privileged": p, "share_gap": gap, "median_cost_gap": cost_gap}
    return {
        "measured_on": f"{len(rows)} of {len(unfavourable)} unfavourable decisions"
        + (" (a uniform sample)" if len(rows) < len(unfavourable) else ""),
        "comparisons": out,
        "max_share_gap": policy.recourse.max_share_gap,
    }


def gate_findings(recourse: RecourseAudit, policy: Policy) -> list[Finding]:
    """The gap between groups in the share of unfavourable decisions that have recourse, judged like a
    metric against ``recourse.max_share_gap`` (a side with no unfavourable decision: insufficient evidence)."""
    if recourse["max_share_gap"] is None:  # measured but not gated
        return []
    bound = Threshold("recourse_share_gap", "abs_difference", recourse["max_share_gap"])
    findings = []
    for key, comp in recourse["comparisons"].items():
        gap = comp["share_gap"]
        if gap is None:
            findings.append(
                Finding(
                    "review",
                    f"recourse {key}",
                    "recourse_share_gap: a group has no unfavourable decision in the test split: insufficient evidence",
                )
            )
            continue
        outcome, message = judge_metric(
            bound, gap["value"], gap["ci_low"], gap["ci_high"], policy.fairness.review_margin
        )
        findings.append(Finding(outcome, f"recourse {key}", message))
    return findings
