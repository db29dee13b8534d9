"""A finished style-transfer job's report: its results table, loss curves and stylized grid on one page."""
from __future__ import annotations

import base64

from sqlalchemy.orm import Session

from service.errors import NotReady
from service.models import Job


def render_style_report(session: Session, job: Job) -> str:
    from service.reports import templates
    from service.style.plots import curves_png, stylized_png
    from service.style.results import style_results, table_rows

    results = style_results(session, job)
    header, cells = table_rows(results)
    figures = []
    for title, caption, draw in (
            ("Training losses", "Style and content loss per training step: per variant the mean over seeds, "
                                "the band ± 1 std (Fig. 5).", curves_png),
            ("Stylized held-out images", "The style image, the held-out content images, then each variant's "
                                         "stylization of them (its lowest seed; Figs. 4 and 9).", stylized_png)):
        try:
            src = "data:image/png;base64," + base64.b64encode(draw(session, job.id)).decode("ascii")
        except NotReady:
            continue
        figures.append({"title": title, "caption": caption, "src": src})
    return templates.get_template("style_report.html").render(job=job, results=results, header=header,
                                                              cells=cells, figures=figures)


def log_plots(session: Session, job: Job) -> None:
    """The curves and the stylized grid as artifacts of the job's MLflow run (plots/curves.png, plots/stylized.png)."""
    import io

    from PIL import Image

    from service.style.plots import JOB_PLOTS
    from workers.tracking import client

    if not job.mlflow_run_id:
        return
    for name, draw in JOB_PLOTS.items():
        try:
            image = Image.open(io.BytesIO(draw(session, job.id)))
        except NotReady:
            continue
        client().log_image(job.mlflow_run_id, image, f"plots/{name}.png")
