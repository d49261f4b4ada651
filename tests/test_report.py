"""The Report task's page, opened in a real headless Chromium (Debian's `chromium`, driven by
Playwright): every chart renders, no request fails, every link leads somewhere."""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import sync_playwright

from movielens_als.synthetic import synthetic_ratings, write_release
from tests.helpers import TEST_SPARK, Mirror, run_luigi, serving, write_config

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.spark]

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
GRID = ["--ranks", "[2,4]", "--reg-params", "[0.1,0.3]", "--max-iters", "[5]"]


@pytest.fixture(scope="module")
def report_path(tmp_path_factory, class_archive_dir):
    """A report of a tuned model, made after another evaluation, so its history has two runs."""
    directory = tmp_path_factory.mktemp("mirror")
    write_release(synthetic_ratings(4000, 120, 90, seed=5), directory / "ml-latest-small.zip", "ml-latest-small")
    Mirror(directory, "").publish("ml-latest-small", (directory / "ml-latest-small.zip").read_bytes())
    root = tmp_path_factory.mktemp("store")
    workdir = tmp_path_factory.mktemp("work")
    with serving(directory) as base_url:
        config = write_config(
            tmp_path_factory.mktemp("config") / "luigi.cfg",
            store={"root": root},
            movielens={"base_url": base_url},
            spark=TEST_SPARK,
            spark_driver={"class_archive_dir": class_archive_dir},
        )
        for args in (["EvaluatedRMSE", "--rank", "3"], ["Report", "--tuned", *GRID]):
            result = run_luigi([*args, "--local-scheduler"], config, workdir)
            assert result.returncode == 0, result.stderr[-5000:]
    [path] = root.glob("reports/ml-latest-small/user_random-0.2-seed42/biased_als-tuned-*/ease-tuned-*/report.html")
    return path


@pytest.fixture(scope="module")
def page(report_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set CHROMIUM to its path")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        failed, errors = [], []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(report_path.as_uri(), wait_until="load")
        yield page, failed, errors
        browser.close()


def test_every_chart_renders_with_content(page):
    page, failed, errors = page
    images = page.eval_on_selector_all(
        "img",
        """images => images.map(image => {
            const canvas = document.createElement("canvas");
            canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(image, 0, 0);
            const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let inked = 0;
            for (let i = 0; i < pixels.length; i += 4) if (pixels[i] + pixels[i + 1] + pixels[i + 2] < 600) inked++;
            return {alt: image.alt, complete: image.complete, width: image.naturalWidth, inked: inked};
        })""",
    )
    assert [i["alt"] for i in images] == [
        "Model vs baselines",
        "Top-10 recommendations",
        "Error by user activity",
        "Predicted vs actual ratings",
        "Tuning grid",
        "History",
    ]
    for image in images:
        assert image["complete"] and image["width"] > 300, image
        assert image["inked"] > 5000, image  # a chart, not a blank canvas
    assert failed == [] and errors == []


def test_every_link_leads_somewhere_on_the_page(page):
    page, _, _ = page
    targets = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    assert targets and all(t.startswith("#") for t in targets)
    for target in targets:
        assert page.query_selector(target) is not None, target


def test_the_page_shows_the_history_and_the_ranking_tables(page):
    page, _, _ = page
    text = page.inner_text("body")
    assert "biased_als-rank3-reg0.15-iter15" in text and "biased_als-tuned-grid-" in text
    assert "precision" in text and "most popular unseen" in text and "MAP" in text
    assert "EASE (λ" in text and "(served)" in text
    assert "4 candidates on" in text
