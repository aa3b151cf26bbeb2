"""docs/performance.md and its plots, regenerated from ``benchmarks/results/*.json``.

The newest full result of each device kind (CPU, CUDA) is shown; a quick result only when no full one
exists. The words are ``benchmarks/performance.md.in`` (``benchmarks.template``); this module picks
the results and fills the page: ``tables`` and ``sections`` compute tables and numbers, ``plots``
draws the figures, ``history`` reads the recorded before and after of applied fixes.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import growth_report, history, plots, sections, tables
from benchmarks.common import REPO, RESULTS, newest_result
from benchmarks.template import Page

DOC = REPO / "docs" / "performance.md"
IMG = REPO / "docs" / "img"
TEMPLATE = Path(__file__).with_name("performance.md.in")

Pick = tuple[Path, dict]  # a result file and its data


def latest(device: str) -> Pick | None:
    """The newest result of ``device`` ("cpu" or "cuda") with figures, full runs before quick ones."""
    return newest_result(
        RESULTS,
        lambda path, data: (
            (not path.stem.endswith("-quick"), data.get("date", ""))
            if data.get("device") == device and data.get("figures")
            else None
        ),
    )


def write_doc() -> Path:
    DOC.write_text(render(latest("cpu"), latest("cuda")))
    return DOC


def render(cpu_pick: Pick | None, gpu_pick: Pick | None, img: Path = IMG, template: Path = TEMPLATE) -> str:
    """docs/performance.md from the chosen CPU and GPU result files (plots go to ``img``)."""
    page = Page.load(template, common=history.recorded(cpu_pick))
    devices = [
        device(page, "CPU", cpu_pick, img) if cpu_pick else page.fill("no-cpu"),
        device(page, "GPU", gpu_pick, img) if gpu_pick else page.fill("no-gpu"),
    ]
    summary = tables.summary(cpu_pick[1] if cpu_pick else None, gpu_pick[1] if gpu_pick else None)
    growth = growth_report.section(page, growth_report.latest(), img)
    return page.fill("page", summary=summary, devices="\n\n".join(devices), growth=growth) + "\n"


def device(page: Page, label: str, pick: Pick, img: Path) -> str:
    """The machine and the seven figures of one result file."""
    path, res = pick
    drawn = plots.draw(res, label.lower(), img)
    return page.fill(
        "device",
        label=label,
        machine=tables.machine(path, res),
        extraction=sections.extraction(page, res, label, drawn.get("extraction")),
        batching=sections.batching(page, res),
        write=sections.write(page, res),
        loader=sections.loader(page, res, drawn.get("loader")),
        training=sections.training(page, res),
        memory=sections.memory(page, res),
        steps=sections.steps(page, res),
    )
