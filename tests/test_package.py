"""The installed package away from the checkout: a wheel built from this tree, installed into a fresh venv,
runs ``video-iared flops --config NAME`` and ``predict``, and finds the demo's and frontier's generators
and configs inside itself.

No network: the wheel is built with this interpreter's setuptools and installed without dependencies;
the venv reads them from this interpreter's site-packages through a ``.pth`` line (a plain path line,
so an editable install of the checkout there is not picked up)."""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from tiny_videos import save_tiny_checkpoint
from train_helpers import REPO

pytestmark = pytest.mark.slow

NOT_SHIPPED = ("tests/", "docs/", "benchmarks/")  # what the wheel does not need from the tree


def _copy_tree(dest: Path) -> None:
    """The files a checkout holds (tracked, or new and not ignored: no venv, no run outputs), links kept;
    outside git, the tree without hidden folders."""
    git = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True)
    if git.returncode != 0:
        skip = shutil.ignore_patterns(".*", "__pycache__", *(name.rstrip("/") for name in NOT_SHIPPED))
        shutil.copytree(REPO, dest, symlinks=True, ignore=skip)
        return
    listed = git.stdout.decode().split("\0")
    for rel in listed:
        source = REPO / rel
        if not rel or rel.startswith(NOT_SHIPPED) or not os.path.lexists(source):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), dest / rel)
        else:
            shutil.copy2(source, dest / rel)


# run inside the installed venv: where the package lives, and the demo's and frontier's steps
PROBE = """
import importlib.util, json, sys
from pathlib import Path
import video_iared
from video_iared import demo, frontier

out = Path(sys.argv[1])
steps = demo.build_steps(out, 3, 3) + frontier.build_steps(out, [0], 3, 3)
argvs = [s.argv for s in steps]
modules = sorted({a[a.index("-m") + 1] for a in argvs})
configs = sorted({a[a.index("--config") + 1] for a in argvs if "--config" in a})
found = {m: importlib.util.find_spec(m) is not None for m in modules}
print(json.dumps({"package": video_iared.__file__, "generate": argvs[0], "modules": found,
                  "configs": configs}))
"""


def _run(argv: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(argv, cwd=cwd, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)
    command = " ".join(map(str, argv))
    assert proc.returncode == 0, f"{command} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with only the wheel installed; returns its folder."""
    root = tmp_path_factory.mktemp("package")
    _copy_tree(root / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(root / "dist"), str(root / "src")], root)
    (wheel,) = (root / "dist").glob("video_iared-*.whl")
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        root).strip())
    (purelib / "dependencies.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "-q", str(wheel)], root)
    return root / "venv"


def test_wheel_runs_flops_by_config_name_and_predict_away_from_the_checkout(installed, tmp_path):
    here = tmp_path / "elsewhere"
    here.mkdir()
    python, cli = installed / "bin" / "python", installed / "bin" / "video-iared"

    flops = _run([str(cli), "flops", "--config", "tiny/backbone"], here)
    assert "GFLOPs per view" in flops and "timesformer_tiny" in flops

    probe = json.loads(_run([str(python), "-c", PROBE, str(here / "out")], here))
    assert Path(probe["package"]).is_relative_to(installed)  # the wheel's copy, not the checkout
    assert probe["modules"] == {"video_iared.cli": True, "video_iared.data_prep.check_videos": True,
                                "video_iared.data_prep.make_synthetic": True}
    venv = installed.resolve()  # the configs are copies in the venv, not links to the checkout
    assert probe["configs"] and all(Path(c).is_file() and Path(c).resolve().is_relative_to(venv)
                                    for c in probe["configs"])
    (metadata,) = installed.glob("lib/python*/site-packages/video_iared-*.dist-info/METADATA")
    requires = [line for line in metadata.read_text().splitlines()
                if line.startswith("Requires-Dist: pytorchvideo")]
    assert requires and all('extra == "bench"' in line for line in requires)  # a benchmark's dependency only

    _run(probe["generate"], here)  # the demo's generator, 3 + 3 videos
    data = here / "out" / "data"
    checkpoint = save_tiny_checkpoint(here / "tiny.pth")  # random init, 3 classes, 32-px frames
    prediction = _run([str(cli), "predict", str(data / "videos" / "val" / "00001.mp4"), "--checkpoint",
                       str(checkpoint), "--classes", str(data / "classes.json")], here)
    assert "top-5:" in prediction and "moving" in prediction and "GFLOPs" in prediction
