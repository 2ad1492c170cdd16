"""Pictures of a run: pure figure functions (``draw``, ``figures``), the HTML report
(``report``) and the stage-2 map snapshot callback (``snapshots``, imports Lightning).

``draw`` and ``figures`` need only numpy, OpenCV and matplotlib; import them directly.
"""
