"""Schedule sweeps over any kernel: a declared space, static pruning, a content-addressed
cache that survives interruption, a process pool or Dask, a ranked answer.

    from ttsim.sweep import Space, Sweep
    space = Space({"q_chunk": [1, 2, 4], "kv_chunk": [2, 4]},
                  constraints=[lambda s, p: None if p["seq"] // 32 % s["q_chunk"] == 0
                               else "q_chunk does not divide seq"])
    res = Sweep("examples/flash_attention.py:run", space, problem, cache="~/.cache/ttsim/sweeps").run()
    print(res.table())

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
import sys
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed as _cf_as_completed
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("TTSIM_SWEEP_CACHE", "~/.cache/ttsim/sweeps")).expanduser()
RESULT_KEYS = ("cycles", "us", "tflops", "pcc", "max_abs_err", "l1_bytes", "bottleneck")


# --- the space -----------------------------------------------------------------------------
class Space:
    """Named schedule parameters, each with its choices, and constraints.

    A constraint is a callable (schedule, problem) -> None when the schedule is admissible,
    else a short reason string; the first reason a schedule meets prunes it. `fixed` are
    schedule arguments passed to every run and not swept."""

    def __init__(self, params, constraints=(), fixed=None):
        self.params = {k: list(v) for k, v in params.items()}
        for k, v in self.params.items():
            if not v:
                raise ValueError(f"parameter {k!r} has no choices")
        self.constraints = list(constraints)
        self.fixed = dict(fixed or {})

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
        return Space(params, self.constraints, self.fixed)

    def __iter__(self):
        names = list(self.params)
        for combo in itertools.product(*(self.params[n] for n in names)):
            yield {**self.fixed, **dict(zip(names, combo))}

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
    ttsim/library/, whose kernels are sources of their own sweeps)."""
    global _SIM_DIGEST
    if _SIM_DIGEST is None:
        import ttsim
        root = Path(__file__).resolve().parent
        files = [f for f in sorted(root.rglob("*.py")) + sorted((root.parent / "sysdesc").glob("*.py"))
                 if "library" not in f.relative_to(root.parent).parts and f.name not in ("sweep.py", "spaces.py")]
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
def resolve(run_fn):
    """A callable from a callable, 'module:function' or 'path/file.py:function'."""
    if callable(run_fn):
        return run_fn
    mod, _, fn = str(run_fn).rpartition(":")
    if not mod:
        raise ValueError(f"run function {run_fn!r}: give 'module:function' or 'file.py:function'")
    if mod.endswith(".py"):
        path = Path(mod).resolve()
        # keyed by contents: a long-lived worker never runs a stale copy of an edited kernel
        name = f"_ttsim_sweep_{path.stem}_{hashlib.sha1(str(path).encode() + path.read_bytes()).hexdigest()[:12]}"
        m = sys.modules.get(name)
        if m is None:
            spec = importlib.util.spec_from_file_location(name, path)
            m = importlib.util.module_from_spec(spec)
            sys.modules[name] = m
            spec.loader.exec_module(m)
    else:
        m = importlib.import_module(mod)
    return getattr(m, fn)


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


def make_executor(jobs=None, scheduler=None):
    """scheduler: None (process pool of `jobs`, serial when jobs <= 1), "local" (a local Dask
    cluster) or a Dask scheduler address."""
    if scheduler:
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            raise SystemExit("--scheduler needs Dask: pip install -e '.[sweep]'") from None
        return _Dask(scheduler, jobs)
    jobs = os.cpu_count() if jobs is None else jobs
    return _Inline() if jobs <= 1 else _Pool(jobs)


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
class Sweep:
    """Enumerate `space` for `problem`, prune, look up the cache, run the rest, rank.

    `sources`: the kernel's source files, hashed into every key (default: the file the run
    function is defined in), so editing a kernel invalidates its entries and no others.
    `sysdesc`: the problem's sysdesc (default problem.get("sysdesc")), fingerprinted by
    contents. `retry_failed` reruns schedules whose cached entry is a failure."""

    def __init__(self, run_fn, space, problem, sources=None, sysdesc=None, cache=None,
                 metric="cycles", retry_failed=False, name=None):
        self.run_fn, self.space, self.problem = run_fn, space, dict(problem)
        self.sources = [str(Path(s).resolve()) for s in (sources or [source_of(run_fn)])]
        self.sysdesc = sysdesc if sysdesc is not None else self.problem.get("sysdesc")
        self.cache = cache if isinstance(cache, Cache) else Cache(cache)
        self.metric, self.retry_failed = metric, retry_failed
        self.name = name or (run_fn if isinstance(run_fn, str) else getattr(run_fn, "__qualname__", "kernel"))

    def key(self, sched):
        return _digest({"kernel": self._kernel, "sysdesc": self._sd, "problem": self.problem,
                        "schedule": sched, "simulator": simulator_digest()})

    def plan(self):
        """(admissible schedules, pruned [(schedule, reason)])."""
        ok, pruned = [], []
        for s in self.space:
            why = self.space.check(s, self.problem)
            (pruned.append((s, why)) if why else ok.append(s))
        return ok, pruned

    def run(self, jobs=None, scheduler=None, progress=True, limit=None, executor=None):
        """Run the sweep; `limit` stops after that many new simulations (for tests and
        budgets); returns a SweepResult."""
        t0 = time.perf_counter()
        self._kernel, self._sd = file_digest(self.sources), sysdesc_fingerprint(self.sysdesc)
        ok, pruned = self.plan()
        rows, todo = [], []
        for s in ok:
            k = self.key(s)
            hit = self.cache.get(k)
            if hit is not None and (hit["ok"] or not self.retry_failed):
                rows.append(dict(hit, schedule=s, key=k, cached=True))
            else:
                todo.append((k, s))
        if limit is not None:
            todo = todo[:limit]
        ran = 0
        if todo:
            ex = executor or make_executor(jobs, scheduler)
            bar = Progress(len(todo), progress)
            try:
                futs = {ex.submit(_execute, self.run_fn, self.problem, s): (k, s) for k, s in todo}
                for f in ex.as_completed(list(futs)):
                    k, s = futs[f]
                    entry = f.result()
                    entry.update(schedule=_canon(s), problem=_canon(self.problem), kernel=self.name)
                    self.cache.put(k, entry)
                    rows.append(dict(entry, schedule=s, key=k, cached=False))
                    ran += 1
                    bar.step("" if entry["ok"] else "(1 failed)")
            finally:
                bar.close()
                if executor is None:
                    ex.close()
        return SweepResult(self, rows, pruned, ran, len(ok), time.perf_counter() - t0)


class SweepResult:
    def __init__(self, sweep, rows, pruned, ran, admissible, wall):
        self.sweep, self.pruned, self.ran, self.admissible, self.wall = sweep, pruned, ran, admissible, wall
        metric = sweep.metric
        good = [r for r in rows if r["ok"] and isinstance(r["result"].get(metric), (int, float))]
        self.ranked = sorted(good, key=lambda r: r["result"][metric])
        self.failed = [r for r in rows if not r["ok"]]
        self.cached = sum(1 for r in rows if r["cached"])
        self.rows = rows

    @property
    def prune_reasons(self):
        """Counter of reasons, with the numbers in them kept (they say which bound broke)."""
        return Counter(why for _, why in self.pruned)

    def summary(self):
        s = self.sweep
        lines = [f"sweep {s.name}: {s.space.size} schedules, {len(self.pruned)} pruned, "
                 f"{self.admissible} admissible: {self.cached} cached, {self.ran} simulated, "
                 f"{len(self.failed)} failed, {len(self.ranked)} ranked in {self.wall:.1f} s"]
        for why, n in self.prune_reasons.most_common():
            lines.append(f"  pruned {n:4d}: {why}")
        return "\n".join(lines)

    def records(self):
        """Flat dicts, ranked first then failures: rank, schedule params, figures, error."""
        params = list(self.sweep.space.params)
        out = []
        for i, r in enumerate(self.ranked + self.failed, 1):
            rec = {"rank": i if r["ok"] else None}
            rec.update({p: _cell(r["schedule"].get(p)) for p in params})
            res = r.get("result") or {}
            for k, v in res.items():
                if isinstance(v, dict):
                    rec.update({f"{k}.{kk}": vv for kk, vv in v.items()
                                if isinstance(vv, (int, float, str, bool))})
                elif not isinstance(v, list):
                    rec[k] = v
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
        head = ["rank", *params, *figs, *[f"{u[:6]}%" for u in util]]
        body = []
        for i, r in enumerate(self.ranked[:top] if top else self.ranked, 1):
            res = r["result"]
            u = res.get("utilisation") or {}
            body.append([str(i), *(_fmt(_cell(r["schedule"].get(p))) for p in params),
                         *(_fmt(res.get(k)) for k in figs),
                         *(f"{100 * u[k]:.0f}" if k in u else "" for k in util)])
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
        with open(path, "w") as f:
            json.dump({"summary": self.summary(), "pruned": dict(self.prune_reasons),
                       "results": self.records()}, f, indent=1, default=str)


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


def main(argv=None):
    from . import spaces
    p = argparse.ArgumentParser(
        prog="ttsim-sweep", description="Sweep a kernel's schedule space: prune, cache, run, rank.",
        epilog="example: ttsim-sweep flash_attention -p heads=8 -p seq=512 -s grid=8x8,4x4 "
               "-s q_chunk=1,2,4 --csv out.csv")
    p.add_argument("kernel", help=f"a declared space ({', '.join(spaces.SPACES)})")
    p.add_argument("-p", "--problem", action="append", default=[], metavar="KEY=VALUE",
                   help="a problem argument (repeatable)")
    p.add_argument("-s", "--set", action="append", default=[], metavar="PARAM=V1,V2",
                   help="replace a schedule parameter's choices (repeatable)")
    p.add_argument("--sysdesc", default=None)
    p.add_argument("--cache", default=None, help=f"cache directory (default {DEFAULT_CACHE})")
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="local processes (1: serial)")
    p.add_argument("--scheduler", default=None,
                   help="'local' for a local Dask cluster, or a Dask scheduler address (needs .[sweep])")
    p.add_argument("--retry-failed", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print pruning and what would run, run nothing")
    p.add_argument("--top", type=int, default=None)
    p.add_argument("--csv", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--quiet", action="store_true", help="no progress line")
    a = p.parse_args(argv)
    if a.kernel not in spaces.SPACES:
        p.error(f"unknown kernel {a.kernel!r}: declared spaces are {', '.join(spaces.SPACES)}")
    kv = lambda s: s.split("=", 1) if "=" in s else p.error(f"{s!r}: use KEY=VALUE")
    problem = {k: _value(v) for k, v in map(kv, a.problem)}
    if a.sysdesc:
        problem["sysdesc"] = a.sysdesc
    sw = spaces.SPACES[a.kernel](problem, cache=a.cache, retry_failed=a.retry_failed)
    choices = {k: [_value(x) for x in v.split(",")] for k, v in map(kv, a.set)}
    try:
        sw.space = sw.space.restrict(**choices)
    except ValueError as e:
        p.error(str(e))
    if a.dry_run:
        ok, pruned = sw.plan()
        print(f"{sw.space.size} schedules: {len(pruned)} pruned, {len(ok)} would run")
        for why, n in Counter(w for _, w in pruned).most_common():
            print(f"  pruned {n:4d}: {why}")
        return 0
    res = sw.run(jobs=a.jobs, scheduler=a.scheduler, progress=not a.quiet)
    print(res.summary())
    print(f"problem: {sw.problem}")
    print(res.table(a.top))
    if a.csv:
        res.to_csv(a.csv)
        print(f"csv: {a.csv}")
    if a.json:
        res.to_json(a.json)
        print(f"json: {a.json}")
    return 0 if res.ranked or not res.admissible else 1


if __name__ == "__main__":
    raise SystemExit(main())
