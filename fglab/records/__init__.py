"""The collections only FGLab writes, one record module each: ``projects``, ``webhooks``,
``tokens``. The Store builds each record over its database (``store.projects``...).

Every collection has exactly one writer (``tests/unit/test_boundaries.py``): these, the
sweep record (`fglab.sweeps.record`) and the records FGLab shares with the machines in
`tasks` (experiments, machines, history, counters, GridFS files).
"""
