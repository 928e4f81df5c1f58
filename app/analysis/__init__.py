"""Pure analysis of metrics and configuration: health, phase progress."""

from app.analysis.health import Health, HealthThresholds, error_ratio, flag_health
from app.analysis.progress import PhaseProgress, PhaseStatus, phase_progress

__all__ = [
    "Health",
    "HealthThresholds",
    "PhaseProgress",
    "PhaseStatus",
    "error_ratio",
    "flag_health",
    "phase_progress",
]
