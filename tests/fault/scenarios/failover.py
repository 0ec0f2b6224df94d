"""Primary failover under Patroni (filled in with lib/patroni.py)."""
SCENARIOS = []
