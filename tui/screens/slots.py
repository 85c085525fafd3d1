"""The daemon's slot counts, changed while it runs (the command palette's "Daemon slots")."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class SlotsScreen(ModalScreen[tuple[int | None, int | None] | None]):
    """Two numbers: runs at once on the CPU, runs sharing one GPU (0: pack by memory).
    Dismissed with the counts to ask for (None: leave that one), or None when cancelled."""
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, cpu_slots: int | None, slots_per_gpu: int | None):
        super().__init__()
        self.cpu_slots = cpu_slots
        self.slots_per_gpu = slots_per_gpu

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Daemon slots: how many runs at once", id="question")
            with Horizontal(classes="slots-row"):
                yield Label("CPU slots ", classes="slots-label")
                yield Input(str(self.cpu_slots or ""), placeholder="1 or more", type="integer",
                            id="cpu")
            with Horizontal(classes="slots-row"):
                yield Label("per GPU   ", classes="slots-label")
                yield Input(str(self.slots_per_gpu or 0), placeholder="0: pack by memory",
                            type="integer", id="per-gpu")
            yield Label("", id="slots-error")
            with Horizontal(id="buttons"):
                yield Button("Apply (enter)", variant="primary", id="apply")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cpu", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#apply")
    def apply(self) -> None:
        cpu_text = self.query_one("#cpu", Input).value.strip()
        gpu_text = self.query_one("#per-gpu", Input).value.strip()
        try:
            cpu = int(cpu_text) if cpu_text else None
            per_gpu = int(gpu_text) if gpu_text else None
        except ValueError:
            cpu = per_gpu = -1
        if (cpu is not None and cpu < 1) or (per_gpu is not None and per_gpu < 0):
            self.query_one("#slots-error", Label).update(
                "CPU slots must be 1 or more, per GPU 0 or more")
            return
        self.dismiss((cpu, per_gpu))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
