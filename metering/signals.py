"""Signals metering sends for the apps built on it (which metering does not import).

``series_parameters_changed``: the parameters a register's consumption series is derived from
changed (a meter's multiplier or max_value, a register's transformer ratio, an account's
anomaly thresholds). Sent inside the writing transaction with ``registers``, a queryset; the
readings engine derives those series again before the transaction commits.
"""

from django.dispatch import Signal

series_parameters_changed = Signal()
