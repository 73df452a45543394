"""Metric sources (CloudWatch statistics, alarm states, the local simulator's percentiles) and the judge."""
