"""Schedule sweeps over any kernel: a declared space, static pruning, a content-addressed
cache that survives interruption, a process pool or Dask, a search for big spaces, a ranked
answer with its Pareto fronts.

    from ttsim.sweep import for_kernel
    sw = for_kernel("examples/flash_attention.py", {"heads": 8, "seq": 512})
    res = sw.run()                      # or sw.search(trials=50) (Optuna)
    print(res.summary()); print(res.table())

A kernel declares its space beside its run function: `schedule_space(problem)` or `SPACE`
in its module (examples/flash_attention.py, ttsim/library/matmul.py).

A run function is called as run_fn(**problem, **schedule) and returns a dict of figures
(or a tuple whose first item is that dict, as flash_attention.run does); the figure named by
`metric` (default "cycles") ranks the results. It is given as a top-level callable or as a
string, "package.module:function" or "path/to/file.py:function", so that worker processes
can import it. See docs/sweep.md.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import importlib.util
import inspect
import itertools
import json
import math
import os
import re
import sys
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed as _cf_as_completed
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("TTSIM_SWEEP_CACHE", "~/.cache/ttsim/sweeps")).expanduser()
RESULT_KEYS = ("cycles", "us", "tflops", "pcc", "max_abs_err", "l1_bytes", "bottleneck")


# --- the space -----------------------------------------------------------------------------
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def group_reasons(reasons):
    """[(count, text)] of prune reasons grouped by their wording with the numbers taken out:
    "L1: needs 1,511,424 bytes > 1,396,736" and "... 2,490,368 ..." are one group, shown with
    the range of each number that varies ("needs 1,511,424..2,490,368 bytes > 1,396,736")."""
    groups = {}
    for why in reasons:
        nums = _NUMBER.findall(why)
        g = groups.setdefault(_NUMBER.sub("\0", why), [0, []])
        g[0] += 1
        g[1].append(nums)

    def value(t):
        return float(t.replace(",", ""))

    out = []
    for tmpl, (n, nums) in groups.items():
        cols = list(zip(*nums))
        shown = [c[0] if len(set(c)) == 1 else
                 f"{min(c, key=value)}..{max(c, key=value)}" for c in cols]
        parts = tmpl.split("\0")
        out.append((n, "".join(p + (shown[i] if i < len(shown) else "") for i, p in enumerate(parts))))
    return sorted(out, key=lambda nt: -nt[0])


class Space:
    """Named schedule parameters, each with its choices, and constraints.

    A constraint is a callable (schedule, problem) -> None when the schedule is admissible,
    else a short reason string; the first reason a schedule meets prunes it. `fixed` are
    schedule arguments passed to every run and not swept. `problem` is the problem the
    space was declared for (the sweep's default). `figures` are name -> f(schedule, problem)
    known without simulating (e.g. the L1 a schedule's buffers take), reported with every
    result. `estimate` is a cheap f(schedule, problem) -> number, lower meaning faster,
    that seeds the search."""

    def __init__(self, params, constraints=(), fixed=None, problem=None, figures=None,
                 estimate=None):
        self.params = {k: list(v) for k, v in params.items()}
        for k, v in self.params.items():
            if not v:
                raise ValueError(f"parameter {k!r} has no choices")
        self.constraints = list(constraints)
        self.fixed = dict(fixed or {})
        self.problem = dict(problem or {})
        self.figures = dict(figures or {})
        self.estimate = estimate

    @property
    def size(self):
        return math.prod(len(v) for v in self.params.values())

    def restrict(self, **choices):
        """A copy with some parameters' choices replaced (e.g. from the command line)."""
        params = dict(self.params)
        for k, v in choices.items():
            if k not in params:
                raise ValueError(f"no schedule parameter {k!r}: the space has {', '.join(params)}")
            params[k] = list(v)
        return Space(params, self.constraints, self.fixed, self.problem, self.figures, self.estimate)

    def __iter__(self):
        names = list(self.params)
        for combo in itertools.product(*(self.params[n] for n in names)):
            yield {**self.fixed, **dict(zip(names, combo))}

    def static_figures(self, sched, problem):
        """The declared figures of one schedule; one that raises is left out."""
        out = {}
        for name, f in self.figures.items():
            try:
                out[name] = _canon(f(sched, problem))
            except Exception:               # noqa: BLE001 - a figure is a nicety, not a verdict
                pass
        return out

    def check(self, sched, problem):
        """The reason `sched` cannot run `problem`, or None."""
        for c in self.constraints:
            try:
                why = c(sched, problem)
            except Exception as e:          # a constraint that breaks prunes, with its error
                why = f"constraint {getattr(c, '__name__', c)!r} raised {type(e).__name__}: {e}"
            if why:
                return str(why)
        return None


def divides(param, total, what=None):
    """Constraint: schedule[param] divides total(problem) (total: a problem key or a callable)."""
    get = total if callable(total) else (lambda p: p[total])

    def divides_(s, p):
        v, n = s[param], get(p)
        if v is not None and n % v:
            return f"{param}={v} does not divide {what or total} ({n})"
        return None
    divides_.__name__ = f"divides_{param}"
    return divides_


def fits(estimate, budget, what="L1"):
    """Constraint: estimate(schedule, problem) <= budget (a number or a callable of problem)."""
    lim = budget if callable(budget) else (lambda p: budget)

    def fits_(s, p):
        need, have = estimate(s, p), lim(p)
        if need > have:
            return f"{what}: needs {need:,} bytes > {have:,}"
        return None
    fits_.__name__ = f"fits_{what}"
    return fits_


def l1_free(sysdesc=None):
    """The L1 a kernel's buffers may take on each core of `sysdesc`: l1_size - l1_reserved."""
    import sysdesc as _sdmod
    sd = _sdmod.load(sysdesc)
    return sd.l1_size - sd.l1_reserved


def grid_fits(param="grid"):
    """Constraint: the schedule's (x, y) grid fits the problem sysdesc's worker grid."""
    def grid_fits_(s, p):
        import sysdesc as _sdmod
        gx, gy = _sdmod.load(p.get("sysdesc")).worker_grid()
        x, y = s[param]
        return None if x <= gx and y <= gy else f"grid {x}x{y} exceeds the chip's {gx}x{gy} workers"
    return grid_fits_


# --- keys ----------------------------------------------------------------------------------
def _canon(x):
    """JSON-able canonical form: tuples as lists, dict keys sorted (by json.dumps)."""
    if isinstance(x, dict):
        return {str(k): _canon(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_canon(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if hasattr(x, "item"):                  # numpy scalars
        return x.item()
    return repr(x)


def _digest(obj):
    return hashlib.sha256(json.dumps(_canon(obj), sort_keys=True).encode()).hexdigest()


def file_digest(paths):
    h = hashlib.sha256()
    for p in sorted(str(Path(q).resolve()) for q in paths):
        h.update(Path(p).name.encode())
        h.update(Path(p).read_bytes())
    return h.hexdigest()


_SIM_DIGEST = None


def simulator_digest():
    """ttsim's version and the contents of its simulator sources (ttsim/ and sysdesc/ less
    ttsim/library/, whose kernels are sources of their own sweeps, and less the sweep)."""
    global _SIM_DIGEST
    if _SIM_DIGEST is None:
        import ttsim
        root = Path(__file__).resolve().parents[1]
        files = [f for f in sorted(root.rglob("*.py")) + sorted((root.parent / "sysdesc").glob("*.py"))
                 if not {"library", "sweep"} & set(f.relative_to(root.parent).parts)]
        ver = getattr(ttsim, "__version__", None)
        if ver is None:
            try:
                from importlib.metadata import version
                ver = version("ttsim")
            except Exception:
                ver = "unknown"
        _SIM_DIGEST = f"{ver}-{file_digest(files)[:16]}"
    return _SIM_DIGEST


def sysdesc_fingerprint(sysdesc=None):
    """A hash of the sysdesc's file contents (built-in name, path, or None for the default)."""
    import sysdesc as _sdmod
    try:
        sd = _sdmod.load(sysdesc)
        return file_digest([sd.path])[:16]
    except Exception as e:
        return f"unresolved:{sysdesc!r}:{type(e).__name__}"


# --- the run function in a worker ----------------------------------------------------------
def load_module(mod):
    """A module from 'package.module' or 'path/file.py'."""
    if mod.endswith(".py"):
        path = Path(mod).resolve()
        if not path.is_file():
            raise ValueError(f"kernel file {mod}: no such file")
        # keyed by contents: a long-lived worker never runs a stale copy of an edited kernel
        name = f"_ttsim_sweep_{path.stem}_{hashlib.sha1(str(path).encode() + path.read_bytes()).hexdigest()[:12]}"
        m = sys.modules.get(name)
        if m is None:
            spec = importlib.util.spec_from_file_location(name, path)
            m = importlib.util.module_from_spec(spec)
            sys.modules[name] = m
            spec.loader.exec_module(m)
        return m
    return importlib.import_module(mod)


def resolve(run_fn):
    """A callable from a callable, 'module:function' or 'path/file.py:function'."""
    if callable(run_fn):
        return run_fn
    mod, _, fn = str(run_fn).rpartition(":")
    if not mod:
        raise ValueError(f"run function {run_fn!r}: give 'module:function' or 'file.py:function'")
    m = load_module(mod)
    try:
        return getattr(m, fn)
    except AttributeError:
        raise ValueError(f"{mod} has no function {fn!r}") from None


def source_of(run_fn):
    """The file a run function's source is in."""
    if not callable(run_fn):
        mod = str(run_fn).rpartition(":")[0]
        if mod.endswith(".py"):
            return str(Path(mod).resolve())
        run_fn = resolve(run_fn)
    return inspect.getsourcefile(inspect.unwrap(run_fn))


def _execute(run_fn, problem, sched):
    """One schedule; never raises: {"ok": True, "result": {...}} or {"ok": False, "error": ...}."""
    t0 = time.perf_counter()
    try:
        out = resolve(run_fn)(**problem, **sched)
        if isinstance(out, tuple):
            out = out[0]
        if not isinstance(out, dict):
            out = {"value": out}
        res = {k: _canon(v) for k, v in out.items()}
        return {"ok": True, "result": res, "wall_s": time.perf_counter() - t0}
    except BaseException as e:            # noqa: BLE001 - a failure is a row, not a crash
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = str(e).splitlines()[0] if str(e) else ""
        return {"ok": False, "error": f"{type(e).__name__}: {msg}",
                "traceback": traceback.format_exc(limit=4), "wall_s": time.perf_counter() - t0}


# --- the store -----------------------------------------------------------------------------
class Cache:
    """A directory of JSON files, one per (kernel, sysdesc, problem, schedule, simulator)
    key; each is written atomically as its result arrives, so an interrupted sweep loses
    nothing it finished."""

    def __init__(self, root=None):
        self.root = Path(root or DEFAULT_CACHE).expanduser()

    def _path(self, key):
        return self.root / key[:2] / f"{key}.json"

    def get(self, key):
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None

    def put(self, key, entry):
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entry, sort_keys=True))
        os.replace(tmp, p)


# --- execution -----------------------------------------------------------------------------
class _Inline:
    """A serial executor (jobs=0/1): same submit/as_completed shape, in this process."""

    class _F:
        def __init__(self, v):
            self._v = v

        def result(self):
            return self._v

    def submit(self, fn, *a):
        return self._F(fn(*a))

    @staticmethod
    def as_completed(futs):
        return iter(futs)

    def close(self):
        pass


class _Pool:
    def __init__(self, jobs):
        self.ex = ProcessPoolExecutor(max_workers=jobs)
        self.as_completed = _cf_as_completed

    def submit(self, fn, *a):
        return self.ex.submit(fn, *a)

    def close(self):
        self.ex.shutdown(wait=False, cancel_futures=True)


class _Dask:
    """dask.distributed: an existing scheduler (address) or a local cluster ("local")."""

    def __init__(self, address, jobs):
        from dask.distributed import Client, LocalCluster, as_completed
        self.cluster = None
        if address in (None, "local"):
            self.cluster = LocalCluster(n_workers=jobs or os.cpu_count(), threads_per_worker=1,
                                        processes=True, dashboard_address=None)
            address = self.cluster
        self.client = Client(address)
        self.as_completed = as_completed

    def submit(self, fn, *a):
        return self.client.submit(fn, *a, pure=False)

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def have_dask():
    return importlib.util.find_spec("distributed") is not None


def make_executor(jobs=None, scheduler="auto"):
    """scheduler: "auto" (serial when jobs <= 1, else a local Dask cluster when Dask is
    installed, else a process pool), "pool" (a process pool of `jobs`), "local" (a local
    Dask cluster of `jobs` workers) or a Dask scheduler address."""
    jobs = os.cpu_count() if jobs is None else jobs
    if scheduler in (None, "auto"):
        if jobs <= 1:
            return _Inline()
        scheduler = "local" if have_dask() else "pool"
    if scheduler == "pool":
        return _Inline() if jobs <= 1 else _Pool(jobs)
    if not have_dask():
        raise SystemExit(f"--scheduler {scheduler} needs Dask: pip install -e '.[sweep]'")
    return _Dask(scheduler, jobs)


class Progress:
    """done/total with ETA: tqdm when installed, else a plain line at most once a second."""

    def __init__(self, total, enabled=True, stream=None):
        self.total, self.done, self.enabled = total, 0, enabled
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if enabled and total:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="sched", file=self.stream)
            except ImportError:
                pass

    def step(self, note=""):
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if note:
                self.bar.set_postfix_str(note)
            return
        now = time.perf_counter()
        if now - self.last >= 1.0 or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("inf")
            print(f"sweep: {self.done}/{self.total} simulated, {now - self.t0:.0f} s, "
                  f"ETA {eta:.0f} s {note}", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()




# --- the sweep -----------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
# short names for the kernels of this checkout that declare a space
KERNELS = {"flash_attention": str(ROOT / "examples" / "flash_attention.py"),
           "matmul": "ttsim.library.matmul"}


def kernel_space(module, problem=None):
    """The Space a kernel module declares for `problem`: its schedule_space(problem), or
    its SPACE with the problem merged into SPACE.problem."""
    fn = getattr(module, "schedule_space", None)
    if callable(fn):
        return fn(dict(problem or {}))
    sp = getattr(module, "SPACE", None)
    if sp is None:
        raise ValueError(f"{module.__name__} declares no schedule space: define "
                         f"schedule_space(problem) or SPACE = Space(...) in it (docs/sweep.md)")
    return Space(sp.params, sp.constraints, sp.fixed, {**sp.problem, **(problem or {})},
                 sp.figures, sp.estimate)


def for_kernel(kernel, problem=None, **kw):
    """A Sweep of a kernel's declared space: kernel is a short name (KERNELS),
    'path/file.py[:function]' or 'package.module[:function]' (the function defaults to run)."""
    spec = KERNELS.get(kernel, kernel)
    mod, _, fn = spec.rpartition(":") if ":" in spec else (spec, ":", "run")
    try:
        m = load_module(mod)
    except ImportError:
        raise ValueError(f"unknown kernel {kernel!r}: give {', '.join(KERNELS)}, a file.py or "
                         f"a module that declares a schedule space") from None
    space = kernel_space(m, problem)
    name = kernel if kernel in KERNELS else Path(mod).stem if mod.endswith(".py") else mod
    return Sweep(f"{mod}:{fn}", space, space.problem, sources=[m.__file__], name=name, **kw)


class Sweep:
    """Enumerate `space` for `problem`, prune, look up the cache, run the rest, rank.

    `problem` is merged over space.problem. `sources`: the kernel's source files, hashed
    into every key (default: the file the run function is defined in), so editing a kernel
    invalidates its entries and no others. `sysdesc`: the problem's sysdesc (default
    problem.get("sysdesc")), fingerprinted by contents. `retry_failed` reruns schedules
    whose cached entry is a failure."""

    def __init__(self, run_fn, space, problem=None, sources=None, sysdesc=None, cache=None,
                 metric="cycles", retry_failed=False, name=None):
        self.run_fn, self.space = run_fn, space
        self.problem = {**space.problem, **(problem or {})}
        self.sources = [str(Path(s).resolve()) for s in (sources or [source_of(run_fn)])]
        self.sysdesc = sysdesc if sysdesc is not None else self.problem.get("sysdesc")
        self.cache = cache if isinstance(cache, Cache) else Cache(cache)
        self.metric, self.retry_failed = metric, retry_failed
        self.name = name or (run_fn if isinstance(run_fn, str) else getattr(run_fn, "__qualname__", "kernel"))

    def key(self, sched):
        return _digest({"kernel": self._kernel, "sysdesc": self._sd, "problem": self.problem,
                        "schedule": sched, "simulator": simulator_digest()})

    def prepare(self):
        """Fingerprint the kernel sources and the sysdesc (once per run: a kernel edited
        between runs gets new keys)."""
        self._kernel, self._sd = file_digest(self.sources), sysdesc_fingerprint(self.sysdesc)

    def check_arguments(self, sched):
        """Refuse a problem the run function cannot take, before anything runs."""
        try:
            sig = inspect.signature(resolve(self.run_fn))
        except (TypeError, ValueError):
            return
        try:
            sig.bind(**self.problem, **sched)
        except TypeError as e:
            raise ValueError(f"{self.name}: the run function cannot take problem {self.problem} "
                             f"with schedule {sched}: {e}") from None

    def plan(self):
        """(admissible schedules, pruned [(schedule, reason)])."""
        ok, pruned = [], []
        for s in self.space:
            why = self.space.check(s, self.problem)
            (pruned.append((s, why)) if why else ok.append(s))
        return ok, pruned

    def lookup(self, sched):
        """(key, the cached row or None when it has to run)."""
        k = self.key(sched)
        hit = self.cache.get(k)
        if hit is not None and (hit["ok"] or not self.retry_failed):
            return k, self.row(hit, sched, k, True)
        return k, None

    def row(self, entry, sched, key, cached):
        """A result row: the entry, its schedule, and the space's static figures under the
        run's own."""
        res = {**self.space.static_figures(sched, self.problem), **(entry.get("result") or {})}
        return dict(entry, result=res, schedule=sched, key=key, cached=cached)

    def evaluate(self, todo, ex, on_row=None):
        """Run [(key, schedule)] on executor `ex`, caching each entry as it lands; yields rows."""
        futs = {ex.submit(_execute, self.run_fn, self.problem, s): (k, s) for k, s in todo}
        for f in ex.as_completed(list(futs)):
            k, s = futs[f]
            entry = f.result()
            entry.update(schedule=_canon(s), problem=_canon(self.problem), kernel=self.name)
            self.cache.put(k, entry)
            yield self.row(entry, s, k, False)

    def run(self, jobs=None, scheduler="auto", progress=True, limit=None, executor=None):
        """Run the sweep; `limit` stops after that many new simulations (for tests and
        budgets); returns a SweepResult."""
        t0 = time.perf_counter()
        self.prepare()
        ok, pruned = self.plan()
        if ok:
            self.check_arguments(ok[0])
        rows, todo = [], []
        for s in ok:
            k, hit = self.lookup(s)
            (rows.append(hit) if hit else todo.append((k, s)))
        todo = todo[:limit] if limit is not None else todo
        if todo:
            ex = executor or make_executor(jobs, scheduler)
            bar = Progress(len(todo), progress)
            try:
                for r in self.evaluate(todo, ex):
                    rows.append(r)
                    bar.step("" if r["ok"] else "(1 failed)")
            finally:
                bar.close()
                if executor is None:
                    ex.close()
        return SweepResult(self, rows, pruned, len(todo), len(ok), time.perf_counter() - t0)

    def search(self, trials, **kw):
        """Optuna over the same space and cache (ttsim.sweep.search.search)."""
        from .search import search
        return search(self, trials, **kw)


def pareto(points):
    """Indices of the points (x, y), both to be small, that no other point beats in both,
    in order of x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def error_of(res):
    """A result's error: max_abs_err, else 1 - pcc, else None."""
    if isinstance(res.get("max_abs_err"), (int, float)):
        return res["max_abs_err"]
    if isinstance(res.get("pcc"), (int, float)):
        return 1.0 - res["pcc"]
    return None


# the fronts: name -> (axis label, the figure of a result)
FRONTS = {"l1": ("L1 bytes", lambda r: r.get("l1_bytes")),
          "error": ("error (max abs err)", error_of)}


class SweepResult:
    def __init__(self, sweep, rows, pruned, ran, admissible, wall, mode="grid", asked=None):
        self.sweep, self.pruned, self.ran, self.admissible, self.wall = sweep, pruned, ran, admissible, wall
        self.mode, self.asked = mode, asked
        metric = sweep.metric
        good = [r for r in rows if r["ok"] and isinstance(r["result"].get(metric), (int, float))]
        self.ranked = sorted(good, key=lambda r: r["result"][metric])
        self.failed = [r for r in rows if not r["ok"]]
        self.cached = sum(1 for r in rows if r["cached"])
        self.rows = rows
        self.fronts = {}
        for name, (_, get) in FRONTS.items():
            pts = [(r["result"][metric], get(r["result"])) for r in self.ranked]
            idx = [i for i, p in enumerate(pts) if isinstance(p[1], (int, float))]
            self.fronts[name] = [self.ranked[idx[j]] for j in pareto([pts[i] for i in idx])]

    @property
    def prune_reasons(self):
        """Counter of reasons, with the numbers in them kept (they say which bound broke)."""
        return Counter(why for _, why in self.pruned)

    def on_front(self, r):
        return [n for n, rows in self.fronts.items() if any(f is r for f in rows)]

    def summary(self):
        s = self.sweep
        how = (f"optuna search, {self.asked} asked: " if self.mode == "optuna" else "")
        lines = [f"sweep {s.name}: {s.space.size} schedules, {how}{len(self.pruned)} pruned, "
                 f"{self.admissible} admissible: {self.cached} cached, {self.ran} simulated, "
                 f"{len(self.failed)} failed, {len(self.ranked)} ranked in {self.wall:.1f} s"
                 + (f"; {left} not run (--limit)" if (left := self.admissible - len(self.rows)) > 0 else "")]
        for n, why in group_reasons(why for _, why in self.pruned):
            lines.append(f"  pruned {n:4d}: {why}")
        ranks = {id(r): i for i, r in enumerate(self.ranked, 1)}
        for name, rows in self.fronts.items():
            if rows:
                lines.append(f"  Pareto front of {s.metric} against {FRONTS[name][0]}: ranks "
                             + ", ".join(str(ranks[id(r)]) for r in rows))
        return "\n".join(lines)

    def records(self):
        """Flat dicts, ranked first then failures: rank, schedule params, figures, the
        fronts it is on, error."""
        params = list(self.sweep.space.params)
        out = []
        for i, r in enumerate(self.ranked + self.failed, 1):
            rec = {"rank": i if r["ok"] else None}
            rec.update({p: _cell(r["schedule"].get(p)) for p in params})
            for k, v in (r.get("result") or {}).items():
                if isinstance(v, dict):
                    rec.update({f"{k}.{kk}": vv for kk, vv in v.items()
                                if isinstance(vv, (int, float, str, bool))})
                elif not isinstance(v, list):
                    rec[k] = v
            rec["pareto"] = ",".join(self.on_front(r))
            rec["error"] = r.get("error")
            rec["cached"] = r["cached"]
            out.append(rec)
        return out

    def table(self, top=None):
        params = list(self.sweep.space.params)
        figs = [k for k in RESULT_KEYS if any(k in r["result"] for r in self.ranked)]
        if self.sweep.metric not in figs:
            figs.insert(0, self.sweep.metric)
        util = sorted({k for r in self.ranked for k in (r["result"].get("utilisation") or {})})
        head = ["rank", *params, *figs, *[f"{u[:6]}%" for u in util], "pareto"]
        body = []
        for i, r in enumerate(self.ranked[:top] if top else self.ranked, 1):
            res = r["result"]
            u = res.get("utilisation") or {}
            body.append([str(i), *(_fmt(_cell(r["schedule"].get(p))) for p in params),
                         *(_fmt(res.get(k)) for k in figs),
                         *(f"{100 * u[k]:.0f}" if k in u else "" for k in util),
                         ",".join(self.on_front(r)) or "-"])
        widths = [max(len(h), *(len(b[j]) for b in body)) if body else len(h) for j, h in enumerate(head)]
        lines = [" ".join(h.rjust(w) for h, w in zip(head, widths))]
        lines += [" ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
        for r in self.failed:
            lines.append(f"  failed {r['schedule']}: {r['error']}")
        return "\n".join(lines)

    def to_csv(self, path):
        recs = self.records()
        cols = list(dict.fromkeys(k for r in recs for k in r))
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, cols)
            w.writeheader()
            w.writerows(recs)

    def to_json(self, path):
        ranks = {id(r): i for i, r in enumerate(self.ranked, 1)}
        with open(path, "w") as f:
            json.dump({"summary": self.summary(), "problem": _canon(self.sweep.problem),
                       "pruned": dict(self.prune_reasons),
                       "pareto": {n: [ranks[id(r)] for r in rows] for n, rows in self.fronts.items()},
                       "results": self.records()}, f, indent=1, default=str)

    def to_html(self, path):
        from .html import write_html
        write_html(self, path)
def _cell(v):
    if isinstance(v, (list, tuple)):
        return "x".join(str(x) for x in v)
    return v


def _fmt(v):
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.5g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


# --- command line --------------------------------------------------------------------------
def _value(s):
    """A command-line value: int, float, bool, None, a grid 4x4, else the string."""
    low = s.lower()
    if low == "none":
        return None
    if low in ("true", "false"):
        return low == "true"
    if "x" in low and all(p.isdigit() for p in low.split("x")):
        return tuple(int(p) for p in low.split("x"))
    for t in (int, float):
        try:
            return t(s)
        except ValueError:
            pass
    return s


def main(argv=None, prog="ttsim sweep"):
    p = argparse.ArgumentParser(
        prog=prog, description="Sweep a kernel's schedule space: prune, cache, run or search, rank.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               f"  {prog} flash_attention -p heads=8 -p seq=512 -s grid=8x8,4x4 -s q_chunk=1,2,4 --html fa.html\n"
               f"  {prog} matmul -p M=1024 -p K=1024 -p N=1024 --search optuna --trials 40\n"
               f"  {prog} path/to/kernel.py:run --scheduler tcp://HOST:8786 --csv out.csv\n"
               "docs/sweep.md describes the options and how a kernel declares its space.")
    p.add_argument("kernel", help=f"{', '.join(KERNELS)}, a file.py[:function] or a "
                                  f"package.module[:function] that declares a schedule space")
    p.add_argument("-p", "--problem", action="append", default=[], metavar="KEY=VALUE",
                   help="a problem argument (repeatable)")
    p.add_argument("-s", "--set", action="append", default=[], metavar="PARAM=V1,V2",
                   help="replace a schedule parameter's choices (repeatable)")
    p.add_argument("--sysdesc", default=None)
    p.add_argument("--cache", default=None, help=f"cache directory (default {DEFAULT_CACHE})")
    p.add_argument("--jobs", type=int, default=os.cpu_count(),
                   help="local processes or Dask workers (1: serial in this process)")
    p.add_argument("--scheduler", default="auto",
                   help="auto (default: a local Dask cluster when Dask is installed, else a process "
                        "pool), pool, local, or a Dask scheduler address tcp://HOST:PORT")
    p.add_argument("--search", choices=["grid", "optuna"], default="grid",
                   help="grid: every admissible schedule (default); optuna: a seeded search")
    p.add_argument("--trials", type=int, default=50, help="schedules the search evaluates")
    p.add_argument("--seed", type=int, default=0, help="the search's random seed")
    p.add_argument("--limit", type=int, default=None, help="simulate at most N new schedules")
    p.add_argument("--retry-failed", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print pruning and what would run, run nothing")
    p.add_argument("--top", type=int, default=None)
    p.add_argument("--csv", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--html", default=None, help="a self-contained HTML report (plots, sortable table)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    a = p.parse_args(argv)
    kv = lambda s: s.split("=", 1) if "=" in s else p.error(f"{s!r}: use KEY=VALUE")
    problem = {k: _value(v) for k, v in map(kv, a.problem)}
    if a.sysdesc:
        problem["sysdesc"] = a.sysdesc
    for flag, path in (("--csv", a.csv), ("--json", a.json), ("--html", a.html)):
        if path and not Path(path).resolve().parent.is_dir():
            p.error(f"{flag} {path}: directory {Path(path).resolve().parent} does not exist")
    try:
        sw = for_kernel(a.kernel, problem, cache=a.cache, retry_failed=a.retry_failed)
        choices = {k: [_value(x) for x in v.split(",")] for k, v in map(kv, a.set)}
        sw.space = sw.space.restrict(**choices)
        if a.dry_run:
            ok, pruned = sw.plan()
            if ok:
                sw.check_arguments(ok[0])
            print(f"{sw.space.size} schedules: {len(pruned)} pruned, {len(ok)} would run")
            for n, why in group_reasons(w for _, w in pruned):
                print(f"  pruned {n:4d}: {why}")
            return 0
        if a.search == "optuna":
            res = sw.search(a.trials, jobs=a.jobs, scheduler=a.scheduler, seed=a.seed,
                            progress=not a.quiet)
        else:
            res = sw.run(jobs=a.jobs, scheduler=a.scheduler, progress=not a.quiet, limit=a.limit)
    except ValueError as e:
        p.error(str(e))
    print(res.summary())
    print(f"problem: {sw.problem}")
    print(res.table(a.top))
    for fmt, path in (("csv", a.csv), ("json", a.json), ("html", a.html)):
        if path:
            getattr(res, f"to_{fmt}")(path)
            print(f"{fmt}: {path}")
    return 0 if res.ranked or not res.admissible else 1


if __name__ == "__main__":
    raise SystemExit(main())
