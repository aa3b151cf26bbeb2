"""What ``mrnet-train`` shows while it trains: a line per epoch above live bars (epochs with their ETA,
the batches of the epoch under way with the loss, and the evaluation batches of a validation or test pass)
that disappear at the end."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mrnet.train.loop import Reporter
from mrnet.train.render import pct
from mrnet.train.tasks import show


def progress_bars(console: Console) -> Progress:
    """The live bars every long step shows: description, bar, done/total, an info field, elapsed and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


class RichReporter(Reporter):
    """A line per epoch above a live bar (epochs with ETA, batches with loss) that disappears at the end."""

    def __init__(self, con: Console):
        self.console = con
        self.progress = progress_bars(con)

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {escape(text)}", highlight=False)

    def start(self, *, run: Path, description: str, epochs: int, done: int, steps: int) -> None:
        self.console.print(
            f"[bold]{escape(str(run))}[/]: {escape(description)}, {epochs} epochs of {steps} batches", highlight=False
        )
        self.total = epochs
        self.progress.start()
        self.epochs = self.progress.add_task("epoch", total=epochs, completed=done, info="")
        self.batches = self.progress.add_task("batch", total=steps, info="")
        self.evaluating = self.progress.add_task("valid", total=1, info="", visible=False)

    def evaluation(self, *, part: str, done: int, total: int) -> None:
        """A bar for the batches of an evaluation pass (validation, the test curve), shown while it runs."""
        self.progress.update(
            self.evaluating,
            description=part,
            completed=done,
            total=max(total, 1),
            info="evaluating",
            visible=done < total,
        )

    def batch(self, *, epoch: int, step: int, steps: int, loss: float) -> None:
        self.progress.update(self.batches, completed=step, info=f"loss {loss:.3f}")

    def epoch(self, r: dict) -> None:
        info = f"loss {r['train_loss']:.3f}"
        if "valid_accuracy" in r:
            info += f" | valid {pct(r['valid_accuracy'])} F1 {r['valid_macro_f1']:.3f} loss {r['valid_loss']:.3f}"
        elif "valid_roc_auc" in r:
            info += f" | valid ROC-AUC {show('roc_auc', r['valid_roc_auc'])} PR-AUC {show('pr_auc', r['valid_pr_auc'])} loss {r['valid_loss']:.3f}"
        self.progress.update(self.epochs, completed=r["epoch"], info=info)
        self.progress.reset(self.batches, info="")
        best = " [green]best[/]" if r.get("best") else ""
        step = f"C {r['C']:g}" if "C" in r else f"lr {r['lr']:.1e}"  # the linear probe's rounds are values of C
        train = f"  train {pct(r['train_accuracy'])}" if "train_accuracy" in r else ""
        self.console.print(f"epoch {r['epoch']}/{self.total}  {info}{train}  {step}{best}", highlight=False)

    def end(self) -> None:
        self.progress.stop()
