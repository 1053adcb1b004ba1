"""One lock for the local backend's code that builds Python ASTs in more than one thread.

CPython before 3.11.8/3.12.1 keeps the AST constructor's recursion depth in state shared by all
threads (python/cpython#106905), so two threads building ASTs at once can fail with
``SystemError: AST constructor recursion depth mismatch``. The backend does so in two places:
Flask/werkzeug compile every URL rule with :mod:`ast` when an app is made (each start or resume of
a backend), and openeo-pg-parser-networkx builds ASTs for process graphs while a job runs in its
thread. Both hold this lock; a test suite's backend started while another backend's job runs
could otherwise fail at random, more often on a busy machine.
"""

from __future__ import annotations

import threading

COMPILE_LOCK = threading.RLock()
