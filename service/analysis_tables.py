"""An analysis's result as plain tables (header, rows of strings) for the CLI and the docs."""
from __future__ import annotations

from typing import Any


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pm(described: dict[str, Any], digits: int = 2) -> str:
    if described["mean"] is None:
        return "-"
    spread = "" if described["std"] is None else f" ± {_num(described['std'], digits)}"
    return _num(described["mean"], digits) + spread


def _pvalue(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def _p(comparison: dict[str, Any]) -> str:
    return f"t p={_pvalue(comparison['t_pvalue'])}, W p={_pvalue(comparison['wilcoxon_pvalue'])}"


def pruning_tables(result: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """AUC per variant x stage (learned vs random order, paired), then variants against each other."""
    auc_rows = []
    for variant, stages in result["auc"].items():
        for stage, entry in stages.items():
            gain = entry["gate_vs_random"]
            auc_rows.append([variant, f"conv{stage}", str(entry["gate"]["n"]), _pm(entry["gate"]), _pm(entry["random"]),
                             _num(gain["gain_mean"]), _p(gain)])
    pair_rows = [[f"conv{stage}", f"{c['b']} - {c['a']}", str(c["n_pairs"]), _num(c["gain_mean"]), _p(c)]
                 for stage, comparisons in result["auc_comparisons"].items() for c in comparisons]
    return [("area under the top-1 / prune-ratio curve (learned order vs random order, same trials)",
             ["variant", "stage", "n", "AUC learned", "AUC random", "learned - random", "paired tests"], auc_rows),
            ("AUC (learned order) between variants on the same folds",
             ["stage", "difference", "pairs", "mean", "paired tests"], pair_rows)]


def channel_weight_tables(result: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Sums of squared correlations and distinct top-activated images per variant, then paired tests."""
    rows = [[variant, str(sums["with_diagonal"]["n"]), _pm(sums["with_diagonal"], 1), _pm(sums["without_diagonal"], 1),
             _pm(result["distinct_top_images"][variant], 1)] for variant, sums in result["sum_sq"].items()]
    pair_rows = [[key, f"{c['b']} - {c['a']}", str(c["n_pairs"]), _num(c["gain_mean"], 1), _p(c)]
                 for key, comparisons in result["comparisons"].items() for c in comparisons]
    return [(f"sum of squared channel-weight correlations over the network; distinct top images in {result['block']}",
             ["variant", "n", "with diagonal", "without diagonal", "distinct top images"], rows),
            ("between variants on the same folds", ["measure", "difference", "pairs", "mean", "paired tests"],
             pair_rows)]


def tables(kind: str, result: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    return pruning_tables(result) if kind == "pruning" else channel_weight_tables(result)


def to_markdown(kind: str, result: dict[str, Any]) -> str:
    out = []
    for title, header, rows in tables(kind, result):
        out += [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(row) + " |" for row in rows] + [""]
    return "\n".join(out)
