"""Imports every built-in scorer module so that each registers itself."""

from scorers import accuracy, angle, flatness, oracle  # noqa: F401
