"""Detectors: pure state machines over watched aircraft's reports.

- `sorties.py` decides when a sortie starts and ends (and why), counting silence in covered time.
- `coverage.py` records when our feeds were actually looking (pure interval arithmetic).
- `base.py` is the interface of the detectors that watch what an aircraft does *during* a sortie
  (`orbits.py`, `emergencies.py`); a new one is one module plus its tests.
- `airports.py` names the airport nearest a takeoff or a landing, from the bundled list.

Nothing here does I/O or reads a clock: callers pass times in and save what comes out.
"""
