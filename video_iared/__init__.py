"""video_iared."""
