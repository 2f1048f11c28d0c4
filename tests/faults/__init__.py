"""The fault suite (issue 7): kills, backend faults, broken environments, bad inputs, adversarial RCs.

Run it alone with `python -m pytest -q tests/faults`."""
