"""Suite-wide fixtures: any test that leaves a spec violation on a live fake fails."""
from tests.fakes.base import fail_on_spec_violations  # noqa: F401  (autouse)
