"""What a style-transfer trial adds to its MLflow run: which perceptual net and placement it used, the loss
curves as a figure, and its stylized held-out images."""
from __future__ import annotations

import base64
import io

STYLE_EPOCH_METRICS = ("style_loss", "content_loss", "total_loss")
STYLE_SUMMARY_METRICS = ("style_loss_final", "content_loss_final", "total_loss_final", "held_out_style_loss",
                         "held_out_content_loss", "held_out_total_loss")
STYLE_COMPARISON_METRICS = ("diff_style_loss", "diff_content_loss", "diff_total_loss", "t_pvalue_style_loss",
                            "t_pvalue_total_loss")


def loss_curves(history: list[dict], title: str):
    """Style and content loss per curve point (training means), on a bare Figure (no pyplot)."""
    from matplotlib.figure import Figure

    steps = [h["step"] for h in history]
    figure = Figure(figsize=(9, 3.5))
    for axis, key in zip(figure.subplots(1, 2), ("style_loss", "content_loss"), strict=True):
        axis.plot(steps, [h[key] for h in history])
        axis.set(xlabel="step", ylabel=key.replace("_", " "), title=title if key == "style_loss" else None)
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def png_image(encoded: str):
    """A base64 PNG from a trial result as a PIL image."""
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB")


def log_style_run(mlflow, run_id: str, spec, result: dict) -> None:
    """Params saying which net, placement and style image the trial used; its curves and stylized images."""
    from mlflow.entities import Param

    mlflow.log_batch(run_id, params=[Param("perceptual_net", result["perceptual_net"]),
                                     Param("placement", result["placement"]),
                                     Param("style_image", result["style_image"])])
    mlflow.set_tag(run_id, "task", "style_transfer")
    if result.get("history"):
        mlflow.log_figure(run_id, loss_curves(result["history"], f"{spec.variant_label()} seed {spec.seed}"),
                          "loss_curves.png")
    if result.get("stylized_png"):
        mlflow.log_image(run_id, png_image(result["stylized_png"]), "stylized.png")
