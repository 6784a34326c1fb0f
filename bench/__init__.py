"""tidings benchmark suite: tidings side by side with Django Channels and a raw ceiling.

Run everything with ``.venv/bin/python -m bench`` (``--smoke`` for a quick pass).
"""
