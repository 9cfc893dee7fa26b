"""Test support: real servers and databases the tests start and clean up themselves."""
