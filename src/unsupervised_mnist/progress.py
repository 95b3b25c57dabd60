"""Progress of a stage's steps: a tqdm bar on a terminal, one line per step otherwise (logs, CI, DVC)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, desc: str, total: int, done: int = 0, unit: str = "step"):
        """`done` steps are behind already (a resumed training run)."""
        self.desc, self.total, self.done, self.started = desc, total, done, time.perf_counter()
        self.bar = None
        if sys.stdout.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=desc, unit=unit)

    def step(self, text: str) -> None:
        """Say that the step described by `text` is done."""
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.update(1)
            if self.done == self.total:
                self.bar.close()
        else:
            print(f"{self.desc} [{self.done}/{self.total}] {text} ({time.perf_counter() - self.started:.1f} s)",
                  flush=True)
