"""The fault and abuse suites: real server processes under faults and hostile clients.

``pytest -m faults`` / ``-m abuse`` run a bounded slice (in the README's test command);
``scripts/faults`` runs them for longer (``TIDINGS_FAULT_SECONDS``) and prints a table.
"""
