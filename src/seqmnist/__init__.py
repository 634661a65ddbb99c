"""seqmnist: recurrent classifiers on MNIST read row by row."""

from __future__ import annotations

__version__ = "0.1.0"
