"""Test helper: ``python kill_after_checkpoint.py STEP [key=value ...]`` trains like
``video-iared train key=value ...`` but SIGKILLs its own process right after the checkpoint of optimiser step
STEP is on disk (under torchrun only rank 0 saves, so rank 0 dies and torchrun stops the rest)."""
import os
import signal
import sys

from video_iared.config import load_config
from video_iared.engine import checkpoint
from video_iared.engine.train import train

kill_step = int(sys.argv[1])
save = checkpoint.save_checkpoint


def save_then_die(state, path):
    save(state, path)
    if state["global_step"] == kill_step:
        os.kill(os.getpid(), signal.SIGKILL)


checkpoint.save_checkpoint = save_then_die
train(load_config(None, sys.argv[2:]))
