"""loopml's benchmarks: ``make bench`` (``python -m bench``) runs them and writes bench/results/.

They live outside the test suite (DESIGN.md §9). Comparisons against other tools run the real
command-line programs side by side, as child processes of one ``python -m bench`` process, in
fresh folders under ``bench/work/`` on the repository's own filesystem. The other tools come
from ``bench/.venv-peers`` (``make bench-setup``), never from loopml's lock file.
"""
