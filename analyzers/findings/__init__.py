"""Findings: a job's result over a window (``base``) and each job's typed payload (one module per job)."""

from analyzers.findings.base import (
    SEVERITIES,
    STATUSES,
    Finding,
    Metrics,
    Severity,
    Signal,
    Status,
    StoredMetrics,
    clean,
)
from analyzers.findings.canary import CanaryMetrics
from analyzers.findings.coverage import Coverage
from analyzers.findings.drift import DriftMetrics, MultivariateDrift
from analyzers.findings.estimation import EstimationMetrics
from analyzers.findings.fairness import FairnessMetrics
from analyzers.findings.ops import OpsMetrics
from analyzers.findings.performance import PerformanceMetrics
from analyzers.findings.quality import QualityReport, ReasonCount, WindowQuality
from analyzers.findings.replay import ReplayMetrics
from analyzers.findings.versions import VersionFinding, VersionSplit, version_subject

__all__ = [
    "SEVERITIES",
    "STATUSES",
    "CanaryMetrics",
    "Coverage",
    "DriftMetrics",
    "EstimationMetrics",
    "FairnessMetrics",
    "Finding",
    "Metrics",
    "MultivariateDrift",
    "OpsMetrics",
    "PerformanceMetrics",
    "QualityReport",
    "ReasonCount",
    "ReplayMetrics",
    "Severity",
    "Signal",
    "Status",
    "StoredMetrics",
    "VersionFinding",
    "VersionSplit",
    "WindowQuality",
    "clean",
    "version_subject",
]
