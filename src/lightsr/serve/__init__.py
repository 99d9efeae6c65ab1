"""`lightsr serve`: upscale images from a browser on this machine.

:mod:`lightsr.serve.jobs` holds the uploads and runs them one at a time (no web code);
:mod:`lightsr.serve.app` is the FastAPI app and its routes; ``static/`` is the page (plain HTML,
CSS and JavaScript). The web stack (``fastapi``, ``uvicorn``) is imported only when the server
starts, so ``lightsr --help`` stays quick. Front ends sit beside :mod:`lightsr.cli` and call
:mod:`lightsr.inference`; nothing below imports them.
"""
