"""Schema fields shared by generated policy sets (``bench_analysis`` builds its header
from them). Realistic sets for the other benchmarks come from :mod:`realistic`.
"""

from __future__ import annotations

# Schema fields both generated sets share (bench_analysis builds its header from them too).
TICKET_FIELDS = """\
  id: text
  title: text
  severity: enum(low, medium, high, critical)
  priority: enum(low, normal, high, urgent)
  status: enum(new, open, escalated, in_progress, resolved, closed)
"""
LEAD_FIELDS = """\
  id: text
  source: enum(organic, referral, paid_campaign)
  crm_status: enum(accepted, rejected)
"""
