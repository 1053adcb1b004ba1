"""Results documents in the shapes real openEO backends write, with real files and expected outcomes.

Each folder holds one entry's documents (JSON templates whose ``{root}`` is the server's address)
and a ``NOTE.md`` citing where its shape comes from; :mod:`corpus.entries` says where they are
served, which files they point to (written at test time by :mod:`corpus.files` with the values of
:class:`corpus.model.Cube`) and what opening them must give; :mod:`corpus.serve` serves them.
"""

from .entries import BY_NAME, ENTRIES
from .model import Cube, Entry, Expected, File, Window
from .serve import CorpusServer, materialize

__all__ = ["BY_NAME", "ENTRIES", "CorpusServer", "Cube", "Entry", "Expected", "File", "Window", "materialize"]
