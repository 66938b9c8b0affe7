"""The demo's report: the summary over seeds, the verdict sentences, the table and files."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_lpc.demo.config import MODELS, DemoConfig
from keras_lpc.demo.measurement import RunResult


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the demo's table (and of ``summary``): a measured value of every run.

    ``key`` names a `RunResult` field, or ``"field@sub"`` for one entry of a
    dict field (``"pgd_accuracy@0.02"``). ``verdict`` names the row's verdict
    line (``None``: the row has none); ``higher_is_better`` says which way
    the verdict reads. A new measurement is added as a `RunResult` field and
    a `Row` in `SCALARS`; the summary, the table, the verdict and
    ``report.json`` follow from the list.

    Example:

    >>> row = Row("pgd_accuracy@0.02", "PGD accuracy (L-inf eps=0.02)", "{:.2%}")
    >>> row.value({"pgd_accuracy": {"0.02": 0.9, "0.05": 0.7}})
    0.9
    """

    key: str
    label: str
    fmt: str
    verdict: str | None = None
    higher_is_better: bool = True

    def value(self, run: Any) -> float:
        """This row's value in ``run`` (a `RunResult` or its ``to_dict()``)."""
        field, _, entry = self.key.partition("@")
        value = run[field]
        return float(value[entry] if entry else value)


SCALARS = [
    Row("test_accuracy", "test accuracy", "{:.2%}", "test accuracy"),
    Row(
        "min_perturbation",
        "smallest verified perturbation, attack ensemble (mean)",
        "{:.4f}",
        "robustness (smallest verified perturbation, attack ensemble)",
    ),
    Row("min_perturbation_median", "smallest verified perturbation (median)", "{:.4f}"),
    Row(
        "certified_radius",
        "certified radius, a proved lower bound (mean)",
        "{:.4f}",
        "certified radius (a lower bound of the minimal perturbation)",
    ),
    Row("certified_radius_median", "certified radius (median)", "{:.4f}"),
    Row("bracket_ratio", "certified / verified, per input (median; 1 = exact)", "{:.3f}"),
    Row(
        "deepfool",
        "DeepFool score, the papers' metric (mean over flipped inputs)",
        "{:.4f}",
        "DeepFool score (the papers' metric, an upper bound)",
    ),
    Row("deepfool_median", "DeepFool score (median)", "{:.4f}"),
    Row("deepfool_overestimate", "DeepFool / smallest verified (1 = DeepFool exact)", "{:.3f}"),
    Row("deepfool_overestimate_fraction", "inputs where DeepFool > 1.5 x smallest", "{:.1%}"),
    Row("deepfool_never_flipped", "never flipped by DeepFool", "{:.1f}"),
    Row("lipschitz_max", "Lipschitz proxy (max)", "{:.3g}"),
    Row("lipschitz_mean", "Lipschitz proxy (mean)", "{:.3g}"),
    Row("nc1", "NC1", "{:.3g}", "collapse (NC1, lower = tighter)", higher_is_better=False),
    Row("separation_ratio", "separation ratio", "{:.3g}"),
    Row("binarity_peak_distance", "binarity (peak distance)", "{:.3g}"),
    Row(
        "auroc_mahalanobis",
        "AUROC Mahalanobis",
        "{:.3f}",
        "misclassification detection (AUROC Mahalanobis)",
    ),
    Row("auroc_softmax", "AUROC softmax", "{:.3f}"),
    Row("final_gamma", "final gamma", "{:.3g}"),
    Row(
        "noise_latent_shift", "latent shift under N(0, 0.1^2) input noise / class spacing", "{:.3g}"
    ),
    Row(
        "deepfool_latent_shift",
        "latent shift under the DeepFool perturbation / class spacing",
        "{:.3g}",
    ),
]

ONE_SEED = "one seed: no spread (2 or more seeds give a verdict)"


def pgd_rows(budgets: Any) -> list[Row]:
    """The PGD accuracy rows, one per L-inf budget (the keys of ``pgd_accuracy``).

    Example:

    >>> [row.key for row in pgd_rows(["0.02", "0.05"])]
    ['pgd_accuracy@0.02', 'pgd_accuracy@0.05']
    """
    return [
        Row(f"pgd_accuracy@{eps}", f"PGD accuracy (L-inf eps={eps})", "{:.2%}") for eps in budgets
    ]


def table_rows(summary: dict[str, dict[str, float]]) -> list[Row]:
    """The rows of ``summary``: `SCALARS`, then one PGD row per budget it holds."""
    budgets = [
        k.split("@", 1)[1]
        for k in summary[MODELS[0]]
        if k.startswith("pgd_accuracy@") and not k.endswith("_std")
    ]
    return SCALARS + pgd_rows(budgets)


def summarize(runs: list[RunResult]) -> dict[str, dict[str, float]]:
    """Mean and std over seeds of every row, per model, and the number of seeds."""
    summary: dict[str, dict[str, float]] = {}
    for kind in MODELS:
        kept = [r for r in runs if r["model"] == kind]  # RunResult or its to_dict()
        entry: dict[str, float] = {"seeds": len(kept)}
        for row in SCALARS + pgd_rows(kept[0]["pgd_accuracy"]):
            values = [row.value(r) for r in kept]
            entry[row.key] = float(np.mean(values))
            entry[row.key + "_std"] = float(np.std(values))
        summary[kind] = entry
    return summary


def _seeds(summary: dict[str, dict[str, float]]) -> int | None:
    """The fewest seeds behind either arm (None for a summary that does not say)."""
    counts = [summary[m].get("seeds") for m in MODELS]
    return None if None in counts else int(min(counts))


def verdict(summary: dict[str, dict[str, float]]) -> list[str]:
    """Plain sentences derived from the numbers, one per row with a ``verdict`` name.

    A difference larger than the sum of both arms' standard deviations over
    seeds reads "LPC better" or "LPC worse", a smaller one "no clear
    difference". With a single seed there is no spread to compare with: the
    line says so instead of giving a verdict.
    """
    b, lpc = summary["baseline"], summary["lpc"]
    one_seed = _seeds(summary) == 1
    lines = []
    for row in table_rows(summary):
        if row.verdict is None:
            continue
        key = row.key
        diff = lpc[key] - b[key]
        noise = b[key + "_std"] + lpc[key + "_std"]
        if one_seed:
            word = ONE_SEED
        elif abs(diff) <= noise:
            word = "no clear difference"
        elif (diff > 0) == row.higher_is_better:
            word = "LPC better"
        else:
            word = "LPC worse"
        ratio = lpc[key] / b[key] if b[key] else math.inf
        lines.append(
            f"{row.verdict}: baseline {b[key]:.4g}, LPC {lpc[key]:.4g} (x{ratio:.2f}): {word}"
        )
    return lines


def format_table(summary: dict[str, dict[str, float]]) -> str:
    """A Markdown table of the summary, baseline vs LPC (mean ± std over seeds).

    With one seed the cells hold the values alone (a std of 0 would read as
    a measured spread).
    """
    one_seed = _seeds(summary) == 1
    lines = ["| metric | baseline | LPC |", "|---|---|---|"]
    for row in table_rows(summary):
        cells = [row.fmt.format(summary[m][row.key]) for m in MODELS]
        if not one_seed:
            spreads = [row.fmt.format(summary[m][row.key + "_std"]) for m in MODELS]
            cells = [f"{c} ± {s}" for c, s in zip(cells, spreads)]
        lines.append(f"| {row.label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def write_report(
    config: DemoConfig,
    runs: list[RunResult],
    summary: dict[str, dict[str, float]],
    figures: list[str],
    seconds: float,
) -> dict[str, Any]:
    """Write ``report.json`` and ``report.md`` to ``config.out``; return the report dict."""
    out = Path(config.out)
    setup = setup_line(config)
    lines = verdict(summary)
    report = {
        "config": {**dataclasses.asdict(config), "gamma_schedule": repr(config.gamma_schedule)},
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "summary": summary,
        "setup": setup,
        "verdict": lines,
        "runs": [r.to_dict() for r in runs],
        "figures": figures,
        "seconds": seconds,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=_jsonable))
    md = [
        "# keras-lpc demo report",
        "",
        f"Data: {config.dataset}; {config.seeds} seed(s) x {config.epochs} epochs; backend "
        f"{keras.backend.backend()}; attacks (verified ensemble: DeepFool, FMN, PGD with a "
        f"radius search, a gradient-free boundary attack), PGD and Lipschitz on "
        f"{runs[0].attacked} test inputs, the certified radius ({config.certify}) on the first "
        f"{runs[0].certified_inputs} of them. Per input, "
        "certified <= true minimal perturbation <= verified: the bracket ratio is "
        "certified / verified (1 = the truth is known).",
        "",
        setup,
        "",
        format_table(summary),
        "",
        "## What this run shows",
        "",
        *[f"* {line}" for line in lines],
        "",
        *[f"![{f}]({f})" for f in figures],
    ]
    (out / "report.md").write_text("\n".join(md) + "\n")
    return report


def setup_line(config: DemoConfig) -> str:
    """One sentence saying how both arms were trained, and why (docs/reproduction.md)."""
    arms = (
        f"Both arms: {config.architecture} trunk, AdamW with the output layer at "
        f"{config.head_lr_multiplier:g}x the learning rate"
    )
    if config.augment_noise > 0:
        return (
            f"{arms}, Gaussian input noise sigma={config.augment_noise:g} during training. "
            "The audit found LPC more robust than the baseline only with such augmentation "
            "in both arms (docs/reproduction.md); augment_noise=0 turns it off."
        )
    return (
        f"{arms}, no input augmentation. Without augmentation the audit found LPC *less* "
        "robust (a lower DeepFool score) than the baseline (docs/reproduction.md)."
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)
