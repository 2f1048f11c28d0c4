"""`ratchet report`: one static HTML page with plots, readable from file:// with no server.

The plots are PNGs drawn with matplotlib's Agg backend (no display needed), embedded in the page as
base64 data URIs and also written next to it as `<stem>-pass-rate.png`, `<stem>-flips-per-cycle.png`
and `<stem>-flip-matrix.png`.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from pydantic import BaseModel, ConfigDict, Field

from ratchet.agents import package_templates
from ratchet.gates import FlipKind
from ratchet.pipeline.report_data import CycleSummary, FlipMatrix, ReleasePoint, ReportData, collect_report

TEMPLATES = Path(__file__).parent / "templates"
GATE, HOLDOUT, FIX, REGRESSION = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"


class Plot(BaseModel):
    """One rendered plot."""

    model_config = ConfigDict(frozen=True)
    slug: str = Field(description="File name suffix, e.g. 'pass-rate'.")
    title: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def write_report(workspace: Path, agent: str, html_path: Path) -> list[Path]:
    """Collect, plot and write the page and its PNGs. Returns the paths written, the page first."""
    data = collect_report(workspace, agent)
    plots = render_plots(data)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    written = [html_path]
    html_path.write_text(render_html(data, plots), encoding="utf-8")
    for plot in plots:
        path = html_path.with_name(f"{html_path.stem}-{plot.slug}.png")
        path.write_bytes(plot.png)
        written.append(path)
    return written


def render_plots(data: ReportData) -> list[Plot]:
    matrix = data.flip_matrix
    return [
        Plot(
            slug="pass-rate",
            title="Pass rate per release",
            caption="Gate and holdout pass rates (mean of per-task pass rates) of each release on the canonical line.",
            png=_png(_pass_rate_figure(data.releases)),
        ),
        Plot(
            slug="flips-per-cycle",
            title="Fixes and regressions per cycle",
            caption="Confirmed F->P (fixes) and P->F (regressions) flips of every candidate, rejected ones included.",
            png=_png(_flips_figure(data.cycles)),
        ),
        Plot(
            slug="flip-matrix",
            title="Flip matrix of the latest candidate",
            caption=(
                f"Gate tasks of {matrix.rc} ({matrix.decision}) by outcome on {matrix.base_release or 'the baseline'}"
                " (rows) and on the candidate (columns); confirmed flips in brackets."
            )
            if matrix
            else "No candidate has a flip table yet (every one was rejected before evaluation).",
            png=_png(_matrix_figure(matrix)),
        ),
    ]


def render_html(data: ReportData, plots: list[Plot]) -> str:
    env = package_templates(TEMPLATES, autoescape=True, trim_blocks=True)
    return env.get_template("report.html.j2").render(data=data, plots=plots)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _percent(value: float | None) -> float:
    return math.nan if value is None else value * 100


def _pass_rate_figure(releases: list[ReleasePoint]) -> Figure:
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    x = range(len(releases))
    gate = [_percent(r.gate_pass_rate) for r in releases]
    holdout = [_percent(r.holdout_pass_rate) for r in releases]
    for name, color, values, others in (("gate", GATE, gate, holdout), ("holdout", HOLDOUT, holdout, gate)):
        ax.plot(x, values, marker="o", color=color, label=name)
        for i, value, other in zip(x, values, others, strict=True):
            if not math.isnan(value):  # the lower line's label goes below its point, so the two never overlap
                below = value < other or (value == other and name == "gate")
                ax.annotate(
                    f"{value:.1f}%",
                    (i, value),
                    textcoords="offset points",
                    xytext=(0, -14 if below else 7),
                    ha="center",
                    fontsize=8,
                    color=color,
                )
    ax.set_xticks(list(x), [r.release for r in releases])
    ax.set_xlim(-0.5, len(releases) - 0.5)
    ax.set_ylim(0, 105)
    ax.set_ylabel("pass rate (%)")
    ax.set_title("Pass rate per release")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    return figure


def _flips_figure(cycles: list[CycleSummary]) -> Figure:
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    x = list(range(len(cycles)))
    width = 0.38
    fixes = ax.bar([i - width / 2 for i in x], [c.fixes for c in cycles], width, color=FIX, label="fixes (F->P)")
    regressions = ax.bar(
        [i + width / 2 for i in x], [c.regressions for c in cycles], width, color=REGRESSION, label="regressions (P->F)"
    )
    ax.bar_label(fixes, fontsize=8)
    ax.bar_label(regressions, fontsize=8)
    ax.set_xticks(x, [c.label for c in cycles])
    ax.set_xlim(-0.6, len(cycles) - 0.4)
    ax.set_ylim(0, max([c.fixes for c in cycles] + [c.regressions for c in cycles] + [1]) * 1.35)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("confirmed flips (tasks)")
    ax.set_title("Fixes and regressions per cycle")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncols=2)
    return figure


def _matrix_figure(matrix: FlipMatrix | None) -> Figure:
    figure = Figure(figsize=(5, 4.5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    if matrix is None:
        ax.text(0.5, 0.5, "no flip table yet", ha="center", va="center", fontsize=14)
        ax.set_axis_off()
        return figure
    kinds: list[list[FlipKind]] = [["P->P", "P->F"], ["F->P", "F->F"]]
    counts = [[matrix.counts[k] for k in row] for row in kinds]
    image = ax.imshow(counts, cmap="Blues", vmin=0)
    peak = max(max(row) for row in counts) or 1
    for r, row in enumerate(kinds):
        for c, kind in enumerate(row):
            text = str(matrix.counts[kind]) + (f"\n({matrix.confirmed[kind]} confirmed)" if r != c else "")
            ax.text(
                c,
                r,
                text,
                ha="center",
                va="center",
                fontsize=12,
                color="white" if matrix.counts[kind] > peak / 2 else "black",
            )
    ax.set_xticks([0, 1], ["P", "F"])
    ax.set_yticks([0, 1], ["P", "F"])
    ax.set_xlabel(f"after ({matrix.rc})")
    ax.set_ylabel(f"before ({matrix.base_release or 'baseline'})")
    ax.set_title(f"Flip matrix: {matrix.rc} ({matrix.decision})")
    figure.colorbar(image, ax=ax, label="tasks")
    return figure
