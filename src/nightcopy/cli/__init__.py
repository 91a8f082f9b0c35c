"""The command line (click and rich): a thin layer over ops and the engine."""
