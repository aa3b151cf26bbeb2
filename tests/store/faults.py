"""The fault proxy the reliability tests put in front of the test S3 server; it lives in ``benchmarks.faults``,
which the remote-storage benchmark shares."""

from benchmarks.faults import FaultProxy

__all__ = ["FaultProxy"]
