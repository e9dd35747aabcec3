"""Running ``video-iared`` in-process and checking that it failed with one line."""
from __future__ import annotations

from video_iared.cli import main


def one_line_error(argv: list[str], capsys) -> str:
    """Run ``video-iared ARGV``: it must exit 2 with one line on stderr (returned)."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"video-iared {argv[0]}: "), err
    return err
