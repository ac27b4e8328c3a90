"""The KES HTTP API: one blueprint per area (system, keys, policy, identity, logs)."""
