"""Search a schedule space too big to enumerate: Optuna's TPE sampler over the same Space,
seeded from the schedules the space's cheap estimate ranks fastest, through the same cache
and executors as the full sweep. A pruned schedule is told to Optuna as pruned and never
simulated; a schedule asked for again (in this run or a past one) is a cache hit.

Optuna is an optional extra (pip install -e '.[sweep]'), imported only here.
"""
from __future__ import annotations

import os
import random
import time

from . import Progress, SweepResult, _cell, make_executor


def _label(v):
    """A choice as a string Optuna can store (grids are tuples, which it cannot)."""
    return str(_cell(v))


def seeds(space, problem, n, sample=20000, seed=0):
    """The n admissible schedules space.estimate ranks cheapest: among all of them, or
    among `sample` random ones when the space is larger than that."""
    if space.estimate is None or n <= 0:
        return []
    if space.size <= sample:
        cands = list(space)
    else:
        rng = random.Random(seed)
        cands = [{**space.fixed, **{k: rng.choice(v) for k, v in space.params.items()}}
                 for _ in range(sample)]
    scored = []
    for i, s in enumerate(cands):
        if space.check(s, problem) is None:
            try:
                scored.append((float(space.estimate(s, problem)), i, s))
            except Exception:               # noqa: BLE001 - an estimate that breaks seeds nothing
                pass
    out, keys = [], set()
    for _, _, s in sorted(scored, key=lambda t: t[:2]):
        k = tuple(_label(s[p]) for p in space.params)
        if k not in keys:
            keys.add(k)
            out.append(s)
        if len(out) == n:
            break
    return out


def search(sweep, trials, jobs=None, scheduler="auto", seed=0, progress=True, executor=None,
           n_seeds=None, max_asks=None):
    """Evaluate up to `trials` distinct admissible schedules of sweep.space chosen by TPE
    (minimising sweep.metric), simulating in batches of `jobs`; returns a SweepResult.

    The first trials are the `n_seeds` (default: a quarter of the trials, at most 8)
    schedules the space's estimate ranks fastest. Stops early after `max_asks` asks
    (default 20 per trial), which ends a search of a space with fewer admissible schedules
    than `trials`."""
    try:
        import optuna
    except ImportError:
        raise SystemExit("--search optuna needs Optuna: pip install -e '.[sweep]'") from None
    from optuna.trial import TrialState
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    space, problem, metric = sweep.space, sweep.problem, sweep.metric
    names = list(space.params)
    labels = {n: [_label(v) for v in space.params[n]] for n in names}
    for n, ls in labels.items():
        if len(set(ls)) != len(ls):
            raise ValueError(f"parameter {n!r} has choices that print the same ({ls}): the search "
                             f"tells them apart by their text")
    sweep.prepare()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    n_seeds = min(8, max(1, trials // 4)) if n_seeds is None else n_seeds
    for s in seeds(space, problem, n_seeds, seed=seed):
        study.enqueue_trial({n: _label(s[n]) for n in names})
    max_asks = 20 * trials + 100 if max_asks is None else max_asks
    batch = max(1, os.cpu_count() if jobs is None else jobs)

    def tell(trial, row):
        v = (row.get("result") or {}).get(metric)
        if row["ok"] and isinstance(v, (int, float)):
            study.tell(trial, float(v))
        else:
            study.tell(trial, state=TrialState.FAIL)

    seen, pruned, rows = {}, {}, []
    asks = ran = 0
    ex = None
    bar = Progress(trials, progress)
    checked = False
    try:
        while len(seen) < trials and asks < max_asks:
            todo, waiting = [], {}
            while len(todo) < batch and len(seen) + len(todo) < trials and asks < max_asks:
                t = study.ask()
                asks += 1
                lab = tuple(t.suggest_categorical(n, labels[n]) for n in names)
                if lab in pruned:
                    study.tell(t, state=TrialState.PRUNED)
                elif lab in seen:
                    tell(t, seen[lab])
                elif lab in waiting:
                    waiting[lab].append(t)
                else:
                    s = {**space.fixed, **{n: space.params[n][labels[n].index(v)]
                                          for n, v in zip(names, lab)}}
                    why = space.check(s, problem)
                    if why:
                        pruned[lab] = (s, why)
                        study.tell(t, state=TrialState.PRUNED)
                        continue
                    if not checked:
                        sweep.check_arguments(s)
                        checked = True
                    k, hit = sweep.lookup(s)
                    if hit:
                        seen[lab] = hit
                        rows.append(hit)
                        tell(t, hit)
                        bar.step("(cached)")
                    else:
                        waiting[lab] = [t]
                        todo.append((k, s, lab))
            if not todo:
                continue
            ex = ex or executor or make_executor(jobs, scheduler)
            lab_of = {k: lab for k, _, lab in todo}
            for r in sweep.evaluate([(k, s) for k, s, _ in todo], ex):
                lab = lab_of[r["key"]]
                seen[lab] = r
                rows.append(r)
                ran += 1
                for t in waiting[lab]:
                    tell(t, r)
                bar.step("" if r["ok"] else "(1 failed)")
    finally:
        bar.close()
        if ex is not None and executor is None:
            ex.close()
    return SweepResult(sweep, rows, list(pruned.values()), ran, len(seen), time.perf_counter() - t0,
                       mode="optuna", asked=asks)
