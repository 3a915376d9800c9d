"""Live "now playing" sessions on the servers (see reporter.py)."""
from .reporter import LiveReporter, Report, plan_reports

__all__ = ["LiveReporter", "Report", "plan_reports"]
