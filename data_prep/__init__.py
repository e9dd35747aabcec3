"""Data preparation scripts. Each runs as ``python data_prep/NAME.py`` in a checkout and as
``python -m video_iared.data_prep.NAME`` wherever the package is installed (``video_iared/data_prep``
links to this folder, so the wheel ships it)."""
