"""Test helper: ``python interrupt_at_step.py STEP SIGNAL [key=value ...]`` runs ``video-iared train
key=value ...`` and sends SIGNAL (INT or TERM) to its whole process group, DataLoader workers included
(as a terminal's Ctrl-C does), right after optimiser step STEP; exits with the command's status."""
import os
import signal
import sys

from video_iared.cli import main
from video_iared.engine import train

step, name = int(sys.argv[1]), sys.argv[2]
optimizer_step = train._Trainer._optimizer_step


def step_then_signal(self):
    optimizer_step(self)
    if self.global_step == step:
        os.killpg(os.getpgid(0), getattr(signal, f"SIG{name}"))


train._Trainer._optimizer_step = step_then_signal
sys.exit(main(["train", *sys.argv[3:]]))
