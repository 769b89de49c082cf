"""A protocol-level Kubernetes API for the test bed: the real kubectl talks to it (see server.py)."""
