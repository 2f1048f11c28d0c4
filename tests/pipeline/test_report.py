"""`ratchet report`: a static HTML page with three plots, checked on disk and in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ratchet.pipeline.cli.app import app
from ratchet.pipeline.report import FIX, REGRESSION
from ratchet.pipeline.report_data import collect_report
from ratchet.releases.gitstore import GitStore
from ratchet.releases.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("pass-rate", "flips-per-cycle", "flip-matrix")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo(quickstart_demo: Path) -> Path:
    """The session's quickstart workspace (two promotions, then one rejection)."""
    return quickstart_demo


def write_report(demo: Path, html: Path) -> list[str]:
    result = CliRunner().invoke(app, ["report", "coder", "--html", str(html), "--workspace", str(demo)])
    assert result.exit_code == 0, result.output
    return re.findall(r"^wrote (.+)$", result.output, flags=re.MULTILINE)


def test_report_writes_one_page_with_three_embedded_plots_and_their_pngs(demo: Path, tmp_path: Path) -> None:
    html = tmp_path / "out" / "report.html"
    written = write_report(demo, html)
    pngs = [html.with_name(f"report-{slug}.png") for slug in PLOTS]
    assert written == [str(html), *map(str, pngs)]

    page = html.read_text()
    embedded = re.findall(r'<img class="plot" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == 3 and page.count("<img") == 3
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page), "the page needs no network"
    for data, png in zip(embedded, pngs, strict=True):
        assert base64.b64decode(data) == png.read_bytes(), f"{png.name} is the image the page embeds"
        assert png.read_bytes().startswith(PNG_SIGNATURE) and png.stat().st_size > 10_000
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.width >= 400 and image.height >= 400
            assert len(set(image.convert("RGB").getdata())) > 50, "not a blank canvas"

    entries = Registry(demo).ledger("coder")
    releases = [e.release for e in entries if e.decision in ("release", "promote")]
    candidates = [e.rc for e in entries if e.rc]
    assert f"current release <strong>{releases[-1]}</strong>" in page
    for rc in candidates:
        assert f"<td>{rc}</td>" in page


def test_report_data_matches_the_ledger_and_the_evidence(demo: Path) -> None:
    data = collect_report(demo, "coder")
    entries = Registry(demo).ledger("coder")
    assert [r.release for r in data.releases] == [e.release for e in entries if e.decision in ("release", "promote")]
    assert all(r.gate_pass_rate is not None and r.holdout_pass_rate is not None for r in data.releases)
    assert data.releases[0].gate_pass_rate == entries[1].baseline_gate_pass_rate, "v1 measured as the first baseline"
    assert data.releases[1].holdout_pass_rate == entries[1].holdout_pass_rate
    assert [(c.rc, c.decision, c.fixes, c.regressions) for c in data.cycles] == [
        (e.rc, e.decision, e.fixes, e.regressions) for e in entries if e.rc
    ]
    assert data.cycles[-1].decision == "reject" and data.cycles[-1].regressions > 0

    matrix = data.flip_matrix
    assert matrix is not None and matrix.rc == entries[-1].rc and matrix.decision == "reject"
    assert matrix.confirmed["P->F"] == entries[-1].regressions and matrix.confirmed["F->P"] == entries[-1].fixes
    with GitStore(demo) as git:
        flips_csv = git.read(entries[-1].rc_commit or "", f"{entries[-1].evidence}/flips.csv") or b""
    assert sum(matrix.counts.values()) == len(flips_csv.decode().strip().splitlines()) - 1, "one row per gate task"


def test_report_errors_are_one_line(demo: Path, workspace: Path, tmp_path: Path, cli) -> None:
    html = str(tmp_path / "r.html")
    unknown = cli("report", "nobody", "--html", html, "--workspace", str(demo))
    assert unknown.exit_code == 2 and "no agent 'nobody'; agents here: coder" in unknown.output
    fresh = cli("report", "coder", "--html", html, "--workspace", str(workspace))
    assert fresh.exit_code == 2 and "has no decisions yet; run `ratchet cycle" in fresh.output
    for out in (unknown, fresh):
        assert len(out.output.strip().splitlines()) == 1 and "Traceback" not in out.output
    assert not list(tmp_path.glob("r*")), "nothing written on error"


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [CHROMIUM or "chromium", *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


def near(pixel: tuple[int, int, int], hex_color: str, tolerance: int = 12) -> bool:
    target = bytes.fromhex(hex_color.lstrip("#"))
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, target, strict=True))


@pytest.mark.skipif(
    CHROMIUM is None, reason="browser test needs Chromium (Debian: apt-get install chromium); not on PATH"
)
def test_headless_chromium_renders_the_three_plots_from_file_url(demo: Path, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    write_report(demo, html)

    dom = chromium(tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", html.as_uri()).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body and 'data-plots-total="3"' in body.group(0)
    assert 'data-plots-loaded="3"' in body.group(0), f"every <img> decoded with naturalWidth > 0: {body.group(0)}"

    shot = tmp_path / "shot.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", html.as_uri())
    with Image.open(shot) as image:
        pixels = list(image.convert("RGB").getdata())
        assert image.size == (1280, 2000)
    assert len(set(pixels)) > 100, "the screenshot is not blank"
    for name, color in (("fix bars", FIX), ("regression bars", REGRESSION)):
        assert sum(near(p, color) for p in pixels) > 2_000, f"{name} of the flips plot are on screen"
