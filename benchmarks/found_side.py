"""The ensemble's found side before and after issue 28's fixes, measured in one run.

    python benchmarks/found_side.py [--before 84b39ee] [--parts masking fmn pgd linf backends cost]

Runs each part in a child process twice, with keras_lpc from ``--before`` (a
git revision, extracted to a temporary folder) and from this checkout, on the
same trained weights (cached in ``--cache``), and writes the section
``found-side`` of docs/benchmarks.md. Parts:

* ``masking``: the demo MLP (baseline, 15 epochs) behind an input quantiser
  ``round(4 x) / 4`` (gradient exactly zero), 50 digits test inputs, L2 in the
  [0, 1] box: each attack's distance against the best known point (the
  smallest of every run here and of a white-box greedy search over the
  quantisation levels, 8 restarts, which reads the model's scores on level
  vectors); median, p90, max and the share within 5 %.
* ``fmn``: the demo MLP with LPC (the demo's recipe: 60 epochs, input noise
  0.1), 60 inputs, FMN at budgets 100, 200, 300, 1000 against the best known
  (every run here, and foolbox DDN 1000 steps when foolbox loads).
* ``pgd``: the ``pgd`` attack at seeds 0-4 on the same inputs: per input the
  spread max / min over seeds; and PGD started at ``x`` inside the same radius
  search (the change proposed for ``attacks.pgd_attack``), measured with the
  compiled PGD loop directly.
* ``linf``: a linear model (20 inputs, 10 classes, NumPy weights), 200 inputs,
  the default L-inf ensemble and FMN against the exact distance
  ``min_j margin_j / ||w_y - w_j||_1``.
* ``backends``: the ``boundary`` attack alone (L2 and L-inf, default budget)
  on a NumPy-seeded MLP (the same model on every backend), 40 inputs, on
  JAX, TensorFlow and PyTorch: per input the largest relative difference
  between backends.
* ``cost``: the default L2 ensemble on the demo MLP and CNN (baseline, 15
  epochs), 100 inputs in [0, 1]: seconds per attack, and per input the new
  best distance over the old one.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")  # the children's backend, for `machine()`
ROOT = Path(__file__).resolve().parent.parent
PARTS = ("masking", "fmn", "pgd", "linf", "backends", "cost")
BACKENDS = ("jax", "tensorflow", "torch")


def _report_module():
    spec = importlib.util.spec_from_file_location("_report", ROOT / "benchmarks" / "_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spawn(part: str, tree: str, backend: str, cache: str, after: bool) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        args = [sys.executable, __file__, "--child", part, "--cache", cache, "--out", f.name]
        done = subprocess.run(args + (["--after"] if after else []), env=env, cwd=tree,
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{part} failed ({backend}, {tree})")
        return json.loads(Path(f.name).read_text())


def _old_tree(revision: str) -> str:
    folder = tempfile.mkdtemp(prefix="found-before-")
    archive = subprocess.run(
        ["git", "archive", revision], cwd=ROOT, capture_output=True, check=True
    )
    with tempfile.TemporaryFile() as f:
        f.write(archive.stdout)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(folder, filter="data")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--before", default="84b39ee", help="git revision of the old code")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "found-side-models"))
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--after", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from _found_side_parts import child  # beside this file; keras_lpc from PYTHONPATH

        Path(args.out).write_text(json.dumps(child(args.child, args.cache, args.after)))
        return
    old = _old_tree(args.before)
    results: dict = {"before": args.before}
    for part in args.parts:
        backends = BACKENDS if part == "backends" else ("jax",)
        for b in backends:
            for side, tree in (("before", old), ("after", str(ROOT))):
                start = time.perf_counter()
                results[f"{part}/{side}/{b}"] = _spawn(part, tree, b, args.cache, side == "after")
                print(f"{part} {side} {b}: {time.perf_counter() - start:.0f} s", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results))
    body = report(results, args.parts)
    print(body)
    if not args.no_write:
        _report_module().update_section("found-side", body)


def _ratios(found: np.ndarray, ref: np.ndarray) -> str:
    """``median / p90 / max`` of found / ref and the share within 5 % (inf counts as far)."""
    ok = np.isfinite(ref) & (ref > 0)
    r = np.asarray(found)[ok] / ref[ok]
    return (
        f"{np.median(r):.3f} / {np.quantile(r, 0.9):.3f} / {r.max():.3g}",
        f"{np.mean(r <= 1.05):.0%}",
    )


def report(results: dict, parts: list[str]) -> str:
    """The Markdown section of docs/benchmarks.md from the raw ``results``."""
    rep = _report_module()
    rev = results["before"]
    lines = [
        "## The found side before and after (issue 28)",
        "",
        f"`benchmarks/found_side.py`: each part run with keras_lpc at `{rev}` (before) and at "
        "this checkout (after), in child processes, on the same trained weights. "
        f"{rep.machine()}; the machine was shared with other jobs, so times are noisy "
        "(ratios of one run). Ratios are found / best known per input: median / p90 / max, "
        "and the share within 5 %.",
    ]
    get = results.get
    if "masking" in parts:
        b, a = get("masking/before/jax"), get("masking/after/jax")
        ref = np.min([b["run"]["best"], a["run"]["best"], a["white_box"]], axis=0)
        rows = []
        for side, run in (("before", b["run"]), ("after", a["run"])):
            for name, d in [*run["by_attack"].items(), ("**ensemble**", run["best"])]:
                d = np.asarray(d)
                rows.append([side, name, f"{np.isfinite(d).mean():.0%}", *_ratios(d, ref),
                             round(run["seconds"].get(name, run["total"]), 1)])  # fmt: skip
        lines += ["", "### Gradient masking: the demo MLP behind `round(4 x) / 4`", "",
                  "50 digits test inputs, L2 in [0, 1], default budgets; best known: the "
                  "smallest of every run and of a white-box greedy search over the "
                  "quantisation levels (8 restarts).", "",
                  rep.table(["code", "attack", "flipped", "found / best: median / p90 / max",
                             "within 5 %", "seconds"], rows)]  # fmt: skip
    if "fmn" in parts:
        b, a = get("fmn/before/jax"), get("fmn/after/jax")
        runs = [np.asarray(r[k]["d"]) for r in (b, a) for k in r if k.startswith("fmn-")]
        runs += [np.asarray(r["ensemble"]["best"]) for r in (b, a)]
        if a.get("ddn") is not None:
            runs.append(np.asarray(a["ddn"]))
        ref = np.min(runs, axis=0)
        rows = []
        for side, r in (("before", b), ("after", a)):
            for budget in (100, 200, 300, 1000):
                d = np.asarray(r[f"fmn-{budget}"]["d"])
                rows.append([side, budget, float(np.mean(d[np.isfinite(d)])), *_ratios(d, ref),
                             round(r[f"fmn-{budget}"]["s"], 2)])  # fmt: skip
        ddn = "" if a.get("ddn") is None else " and foolbox DDN 1000 steps"
        lines += ["", "### FMN on the demo MLP with LPC", "",
                  f"60 inputs, L2 in [0, 1]; best known: every run here{ddn}.", "",
                  rep.table(["code", "budget", "mean ||r||/||x||", "found / best: median / "
                             "p90 / max", "within 5 %", "seconds"], rows)]  # fmt: skip
        if "pgd" in parts:
            rows = []
            b, a = get("pgd/before/jax"), get("pgd/after/jax")
            for side, r, key in (("before", b, "pgd"), ("after", a, "pgd"),
                                 ("after, PGD from x (proposed)", a, "pgd-x")):  # fmt: skip
                seeds = np.array([r[f"{key}-{s}"] for s in range(5)])
                ok = np.isfinite(seeds).all(0) & (seeds.min(0) > 0)  # misclassified: 0
                spread = seeds.max(0)[ok] / seeds.min(0)[ok]
                rows.append([side, f"{np.median(spread):.3f} / {np.quantile(spread, 0.9):.3f} / "
                             f"{spread.max():.3f}", *_ratios(seeds[0], ref)])  # fmt: skip
            lines += ["", "### PGD's radius search across seeds 0-4 (same model and inputs)", "",
                      rep.table(["code", "spread max/min over seeds: median / p90 / max",
                                 "seed 0 found / best", "within 5 %"], rows)]  # fmt: skip
    if "linf" in parts:
        rows = []
        for side in ("before", "after"):
            r = get(f"linf/{side}/jax")
            exact = np.asarray(r["exact"])
            for name, d in [*r["run"]["by_attack"].items(), ("**ensemble**", r["run"]["best"])]:
                d = np.asarray(d) / exact
                rows.append([side, name, f"{np.mean(d > 1.05):.1%}", float(np.median(d)),
                             float(d.max())])  # fmt: skip
        lines += ["", "### L-inf on a linear model (exact distances)", "",
                  f"20 features, 10 classes, 200 inputs; on {r['not_runner_up']:.1%} of them the "
                  "nearest class is not the runner-up by score.", "",
                  rep.table(["code", "attack", "> 5 % too far", "median", "max"], rows)]  # fmt: skip
    if "backends" in parts:
        rows = []
        for side in ("before", "after"):
            for norm in ("l2", "linf"):
                d = np.array([get(f"backends/{side}/{b}")[norm] for b in BACKENDS])
                gap = d.max(0) / d.min(0) - 1.0
                rows.append([side, norm, f"{np.median(gap):.2%}", f"{np.quantile(gap, 0.9):.2%}",
                             f"{gap.max():.2%}"])  # fmt: skip
        lines += ["", "### The boundary attack across backends (same model, same seed)", "",
                  "A NumPy-seeded MLP, 40 inputs in [0, 1], the `boundary` attack alone: per "
                  "input max / min over JAX, TensorFlow and PyTorch, minus 1.", "",
                  rep.table(["code", "norm", "median", "p90", "max"], rows)]  # fmt: skip
    if "cost" in parts:
        rows = []
        for model in ("mlp", "cnn"):
            b, a = get("cost/before/jax")[model], get("cost/after/jax")[model]
            for side, r in (("before", b), ("after", a)):
                s = r["seconds"]
                rows.append([model, side, *(round(s.get(k, 0.0), 1) for k in
                             ("deepfool", "fmn", "pgd", "boundary")), round(r["total"], 1),
                             f"{s.get('boundary', 0) / sum(s.values()):.0%}"])  # fmt: skip
            old, new = np.asarray(b["best"]), np.asarray(a["best"])
            ok = old > 0
            r = new[ok] / old[ok]
            rows.append([model, "after / before per input", f"median {np.median(r):.4f}",
                         f"mean {r.mean():.4f}", f"max {r.max():.4f}", f"min {r.min():.4f}",
                         f"> 1 %: {np.sum(r > 1.01)}", f"< -1 %: {np.sum(r < 0.99)}"])  # fmt: skip
        lines += ["", "### Cost of a default L2 call (100 inputs, [0, 1] box)", "",
                  rep.table(["model", "code", "deepfool s", "fmn s", "pgd s", "boundary s",
                             "total s", "boundary share"], rows)]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
