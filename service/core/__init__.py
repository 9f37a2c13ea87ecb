"""The pure core: business rules as plain functions and frozen dataclasses.

Nothing in this package does I/O or reads the clock by itself: time is passed in, so every rule is
testable with a fixed instant.
"""
