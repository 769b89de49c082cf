"""kubectl-wand: attach a debugger to, or run code in, a live Python 3.14 process."""

__version__ = "0.1.0"
