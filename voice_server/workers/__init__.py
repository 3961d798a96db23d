"""Several media processes on one machine (``serve --workers N``; README "Several processes")."""
