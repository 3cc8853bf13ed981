"""The kopf shell: read, plan, render, apply, report. All I/O of the operator lives here."""
