"""``python -m lightsr.cli``: how torchrun starts training (``torchrun -m lightsr.cli train``)."""

from lightsr.cli import main

raise SystemExit(main())
