"""The long-run machinery, below the methods and the stage runner that use it.

- ``atomic``: atomic file writes (the only implementation), ``RecordingWriter``;
- ``diskspace``: a full disk as one line; ``outdir``: output folders checked before any work;
- ``runlock``: one writer per run folder;
- ``resume``: exact resume (``ReproducibleEpochs``, ``AtomicCheckpointIO``);
- ``preemption``: SIGTERM / Ctrl+C save after the batch; ``guards``: NaN / Inf checks;
  ``stops``: why a stage stopped, in one line;
- ``peers``: a lost DDP process (liveness watchdog, ``WatchedDDPStrategy``);
- ``disk_use``: checkpoint sizes, the space check, ``-last`` hygiene;
- ``logs``: Lightning's CSV log written atomically;
- ``progress_lines`` (loops outside Lightning) and ``progress_bars`` (Lightning's bars).

Nothing here knows a method, a stage's meaning, a dataset or a network.
"""
