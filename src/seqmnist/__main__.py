"""``python -m seqmnist`` (and ``torchrun -m seqmnist``)."""

from .cli import main

raise SystemExit(main())
