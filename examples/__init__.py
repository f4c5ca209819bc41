"""Worked examples that the README quotes and the tests import and train."""
